"""What the evaluation costs beside training (not a test):

    python -m bench.evaluation [--train-steps 300] [--test-images 200] [--setups mlp conv] [--device cpu|cuda]
                               [--out bench/results.json]

For the 8×8 digits (MLP) and for 28×28 images (conv; the digits upsampled, as MNIST-size stand-ins,
since MNIST cannot be downloaded here), side by side in one process: a model is trained for
``--train-steps`` Adam steps with ``run.py``'s default objective, then each stage of the default
evaluation (``run.py``'s own defaults: the ELBO to its standard error, K by the image size, 100 SR
samples) is timed on ``--test-images`` test images. It prints, per test image, the seconds of each
stage beside one training epoch's seconds per image, and the share of the wall time the evaluation
takes in the default runs those rates imply: ``python run.py`` (the digits) and
``python run.py --dataset mnist`` (60 000 training images, 20 epochs, 1 000 test images); and how
far the 28×28 importance-weighted estimate at its default K lies from K = 1000. It writes them to
``bench/results.json`` under "evaluation".

The ELBO's particles are an upper bound of the MNIST run's: its standard error over 1 000 test
images needs fewer particles per image than over ``--test-images``.
"""

import argparse
import math
import sys
import time
from pathlib import Path

import pyro
import torch
from torch.nn import functional as F

from bench.__main__ import environment, synchronize
from bench.record import record
from data import load_dataset
from evaluation.elbo import explicit_neg_elbo, mean_and_se, pyro_neg_elbo_repeats
from evaluation.loglik import importance_weighted_log_likelihood
from evaluation.superres import evaluate_superres
from experiment.config import RunConfig
from training.build import build_model_and_guide
from training.loop import adam
from training.objectives import make_objective

ROOT = Path(__file__).resolve().parent.parent
# the default runs whose shares are projected: (training images, epochs, test images)
DEFAULT_RUNS = {"mlp / digits 8×8": ("python run.py", None, None, None),
                "conv / 28×28": ("python run.py --dataset mnist", 60_000, 20, 1000)}


def run_defaults(image_shape):
    """``run.py``'s configuration for these images with every flag at its default, resolved as a run
    resolves it, without data."""
    config = RunConfig()
    arch = config.architecture_for(image_shape)
    noise = config.noise_for(arch)
    return config.but(arch=arch, noise=noise, nll_beta=0.5 if noise == "pixel" else 0.0,
                      image_shape=list(image_shape)).with_evaluation_defaults()


def images_for(setup: str, values: torch.Tensor) -> torch.Tensor:
    """The digits as they are, or upsampled bilinearly to 28×28."""
    return values if setup.startswith("mlp") else F.interpolate(values, size=28, mode="bilinear").clamp(0, 1)


def timed(fn, device="cpu"):
    """(fn's result, its seconds, the device's queued work included)."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def measure(setup: str, train_steps: int, test_images: int, batch: int = 64, k_shift_images: int = 0,
            device: str = "cpu") -> dict:
    """Training seconds per image and each evaluation stage's seconds per test image, at defaults, on
    ``device``; where the default K is below 1000, on ``k_shift_images`` of the test images, how much
    the importance-weighted estimate moves up to K = 1000 (``k_shift``)."""
    data = load_dataset("digits")
    train = images_for(setup, data.train_values).to(device)
    test = images_for(setup, data.test_images())[:test_images].to(device)
    config = run_defaults(train.shape[1:])
    pyro.set_rng_seed(0)
    model, guide = build_model_and_guide(config, train.shape[1:], device)
    loss_fn = make_objective("pyro", model, guide, nll_beta=config.nll_beta)
    optimizer = adam(loss_fn.parameters(), config.lr)
    generator = torch.Generator().manual_seed(0)

    def step():
        x = train[torch.randint(len(train), (batch,), generator=generator)]
        loss = loss_fn(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(train_steps):  # the model the evaluation meets: trained, if briefly
        step()
    _, seconds = timed(lambda: [step() for _ in range(20)], device)
    train_per_image = seconds / (20 * batch)
    n = len(test)
    with torch.no_grad():
        precision = {"target_se": config.elbo_se, "max_particles": config.eval_max_particles}
        pyro_rows, pyro_s = timed(lambda: pyro_neg_elbo_repeats(model, guide, test, None, config.eval_particles,
                                                                config.eval_repeats, **precision), device)
        explicit, explicit_s = timed(lambda: explicit_neg_elbo(model, guide, test, None, config.eval_particles,
                                                               config.eval_repeats, **precision), device)
        _, iw_s = timed(lambda: importance_weighted_log_likelihood(model, guide, test,
                                                                   num_samples=config.iw_samples), device)
        y = guide.d(test)
        _, sr_s = timed(lambda: evaluate_superres(model, guide, test, y, config.scale, config.sr_samples), device)
    stages = {"elbo_pyro": pyro_s / n, "elbo_explicit": explicit_s / n, "iw": iw_s / n, "superres": sr_s / n}
    shift = k_shift(model, guide, test[:k_shift_images], config.iw_samples) if k_shift_images else None
    return {"image_shape": list(train.shape[1:]), "arch": config.arch, "noise": config.noise,
            "train_steps": train_steps, "test_images": n, "train_seconds_per_image_epoch": train_per_image,
            "eval_seconds_per_test_image": stages, "eval_seconds_per_test_image_total": sum(stages.values()),
            "elbo_particles_pyro": len(pyro_rows) * config.eval_particles,
            "elbo_particles_explicit": explicit["repeats"] * config.eval_particles,
            "elbo_se_pyro": mean_and_se(pyro_rows)[1],
            "elbo_se_explicit": explicit["neg_elbo"][1], "iw_samples": config.iw_samples,
            "digits_train_images": len(data.train_values), "digits_test_images": len(data.test_values),
            **({"iw_k_shift": shift} if shift else {})}


@torch.no_grad()
def k_shift(model, guide, x, k: int, k_full: int = 1000) -> dict:
    """How much the importance-weighted −log p(x, y) moves from K = ``k`` to K = ``k_full``: the mean
    over images of the per-image difference, with its standard error over images (the same images,
    independent draws). log p̂_K is a lower bound that rises with K, so the difference is ≥ 0 up to
    noise."""
    low = importance_weighted_log_likelihood(model, guide, x, num_samples=k)
    high = importance_weighted_log_likelihood(model, guide, x, num_samples=k_full)
    difference = (high - low).double()
    return {"k": k, "k_full": k_full, "images": len(x), "neg_log_likelihood_at_k": -low.mean().item(),
            "rise_to_k_full": difference.mean().item(),
            "rise_to_k_full_se": (difference.std() / math.sqrt(len(x))).item(),
            "rise_per_pixel_value": difference.mean().item() / x[0].numel()}


def evaluation_share(row: dict, train_images: int, epochs: int, test_images: int) -> float:
    """The evaluation's share of a run's wall time (training, then evaluation) at these rates."""
    train = row["train_seconds_per_image_epoch"] * train_images * epochs
    evaluate = row["eval_seconds_per_test_image_total"] * test_images
    return evaluate / (train + evaluate)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=300, help="training before the evaluation [%(default)s]")
    parser.add_argument("--test-images", type=int, default=200, help="test images timed [%(default)s]")
    parser.add_argument("--k-shift-images", type=int, default=50,
                        help="test images on which the 28×28 IW estimate at its default K is compared with "
                             "K = 1000 (0: not measured) [%(default)s]")
    parser.add_argument("--setups", nargs="+", choices=("mlp", "conv"), default=["mlp", "conv"],
                        help="the digits' MLP, the 28×28 conv, or both [%(default)s]")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="[%(default)s]")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json", help="[%(default)s]")
    args = parser.parse_args(argv)
    pyro.enable_validation(False)
    report = {"environment": environment(args.device), "setups": {}}
    print(f"{'setup':<18} {'train/img·epoch':>15} {'Pyro ELBO':>10} {'explicit':>10} {'IW':>10} {'SR':>10}"
          f"  {'ELBO particles':>14} {'K':>5}  default run: evaluation's share")
    for setup, (command, train_images, epochs, test_images) in DEFAULT_RUNS.items():
        if setup.split()[0] not in args.setups:
            continue
        row = measure(setup, args.train_steps, args.test_images, k_shift_images=0 if setup.startswith("mlp")
                      else args.k_shift_images, device=args.device)
        if train_images is None:  # the digits: their own split and default epochs
            from experiment.config import default_epochs

            train_images, test_images = row["digits_train_images"], row["digits_test_images"]
            epochs = default_epochs("digits", train_images, 64)
        row["default_run"] = {"command": command, "train_images": train_images, "epochs": epochs,
                              "test_images": test_images,
                              "evaluation_share": evaluation_share(row, train_images, epochs, test_images)}
        report["setups"][setup] = row
        s = row["eval_seconds_per_test_image"]
        print(f"{setup:<18} {row['train_seconds_per_image_epoch'] * 1e3:>12.3f} ms "
              + " ".join(f"{s[k] * 1e3:>7.2f} ms" for k in ("elbo_pyro", "elbo_explicit", "iw", "superres"))
              + f"  {row['elbo_particles_pyro']:>6} / {row['elbo_particles_explicit']:<5} {row['iw_samples']:>5}"
              + f"  {command}: {100 * row['default_run']['evaluation_share']:.0f} %", flush=True)
        if "iw_k_shift" in row:
            shift = row["iw_k_shift"]
            print(f"  IW −log p(x, y) at K = {shift['k']}: {shift['neg_log_likelihood_at_k']:.2f} nats/image; from K = "
                  f"{shift['k']} to {shift['k_full']} it falls by {shift['rise_to_k_full']:.2f} ± "
                  f"{shift['rise_to_k_full_se']:.2f} nats/image ({shift['images']} images)", flush=True)
    record(args.out, "evaluation", report)
    print(f"written to {args.out} under \"evaluation\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
