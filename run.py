"""SRVAE-Pyro: train the super-resolution VAE on a data set, evaluate it on the test split,
write figures, metrics and a checkpoint, and print a summary.

    python run.py --guide amortized
"""

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

from data import DATASETS, DOWNSCALE_MODES
from guides import GUIDES
from model import PRIORS
from model.elbo import MIXTURE_KL
from training.build import MODELS
from training.objectives import OBJECTIVES

DEVICES = ("auto", "cpu", "cuda")


class UsageError(Exception):
    """Bad input: reported as one line and exit status 2, before anything is written."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive(kind):
    """An argparse type: a number of ``kind`` (int or float) that must be > 0."""
    noun = "an integer" if kind is int else "a number"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"must be positive and finite, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    m = p.add_argument_group("model and inference")
    m.add_argument("--model", default="srvae", choices=list(MODELS),
                   help="; ".join(f"{k} = {v}" for k, v in MODELS.items()) + " [%(default)s]")
    m.add_argument("--guide", default="amortized", choices=list(GUIDES),
                   help="how q(u|y) and q(z|x) get their parameters (SPEC §5) [%(default)s]")
    m.add_argument("--prior", default="normal", choices=list(PRIORS),
                   help="p(u): standard normal or a learnable mixture of Gaussians (SPEC §6) [%(default)s]")
    m.add_argument("--components", type=positive(int), default=10,
                   help="number of mixture components K for --prior mog [%(default)s]")
    m.add_argument("--mixture-kl", default="tight", choices=MIXTURE_KL,
                   help="KL_u for a mixture prior in the explicit ELBO: tight bound −log Σ w e^−KL, "
                        "the seed's convexity bound Σ w KL, or Monte Carlo [%(default)s]")
    m.add_argument("--likelihood", default="gaussian", choices=("gaussian", "discretized"),
                   help="decoders: Gaussian densities on dequantized pixels, or each Gaussian's mass on the "
                        "pixel's bin with y = d(x) rounded to the same grid (comparable with a VAE) [%(default)s]")
    m.add_argument("--objective", default="pyro", choices=list(OBJECTIVES),
                   help="training loss: " + "; ".join(f"{k} = {v}" for k, v in OBJECTIVES.items()) + " [%(default)s]")
    m.add_argument("--particles", type=positive(int), default=1,
                   help="Monte-Carlo samples per image in the training objective [%(default)s]")
    m.add_argument("--latent-u", type=positive(int), default=4, help="dimension L_u of u, the code of y [%(default)s]")
    m.add_argument("--latent-z", type=positive(int), default=8,
                   help="dimension L_z of z, the code of what x adds to y [%(default)s]")
    m.add_argument("--hidden", type=positive(int), default=256, help="width of every hidden layer [%(default)s]")
    m.add_argument("--depth", type=positive(int), default=2, help="hidden layers per network [%(default)s]")
    m.add_argument("--gamma-min", type=positive(float), default=1e-3,
                   help="floor of the decoder standard deviations γ₁, γ₂ [%(default)s]")

    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="digits", choices=list(DATASETS),
                   help="digits = scikit-learn's bundled 8×8 digits, works offline [%(default)s]")
    d.add_argument("--scale", type=int, default=2, choices=(2, 4),
                   help="downscaling factor s of y = d(x) [%(default)s]")
    d.add_argument("--downscale", default="area", choices=DOWNSCALE_MODES, help="how d(x) downscales [%(default)s]")

    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=positive(int), default=200, help="passes over the training set [%(default)s]")
    t.add_argument("--batch-size", type=positive(int), default=64, help="images per step [%(default)s]")
    t.add_argument("--lr", type=positive(float), default=1e-3, help="Adam learning rate [%(default)s]")
    t.add_argument("--seed", type=int, default=0, help="seeds initialisation, training and evaluation [%(default)s]")
    t.add_argument("--device", default="auto", choices=DEVICES,
                   help="auto = cuda when available, else cpu [%(default)s]")

    e = p.add_argument_group("evaluation and output")
    e.add_argument("--eval-particles", type=positive(int), default=64,
                   help="particles per test image in each ELBO estimate [%(default)s]")
    e.add_argument("--eval-repeats", type=positive(int), default=10,
                   help="independent ELBO estimates, for the standard errors (at least 2) [%(default)s]")
    e.add_argument("--iw-samples", type=positive(int), default=1000,
                   help="importance samples K per test image for the estimate of log p(x, y) [%(default)s]")
    e.add_argument("--sr-samples", type=positive(int), default=100,
                   help="samples of x per LR image for super-resolution [%(default)s]")
    e.add_argument("--sr-fit-steps", type=int, default=None,
                   help="super-resolve from a Gaussian posterior per LR image fitted by this many SVI steps to "
                        "the model given y; 0 = the trained guide's q(·|y) [0 for srvae, 300 for vae]")
    e.add_argument("--sr-proposals", type=int, default=None,
                   help="resample the SR draws, weighted by the model, from this many proposals per image; "
                        "0 = take the draws as they are [0 for srvae, 1000 for vae]")
    e.add_argument("--out", type=Path, default=None,
                   help="output folder [runs/DATASET-MODEL-GUIDE-PRIOR]")
    return p


def resolve_device(name: str) -> str:
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def prepare_out(out: Path) -> Path:
    """Create ``out`` if needed and check that files can be written there."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"--out {out}: cannot write there ({error.strerror or error}); "
                         "choose a writable folder") from None
    return out


def check(args) -> None:
    if args.eval_repeats < 2:
        raise UsageError(f"--eval-repeats must be at least 2 for a standard error, got {args.eval_repeats}")
    for flag, vae_default in (("sr_proposals", 1000), ("sr_fit_steps", 300)):
        if getattr(args, flag) is None:
            setattr(args, flag, vae_default if args.model == "vae" else 0)
        if getattr(args, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be 0 or more, got {getattr(args, flag)}")


def write_outputs(out: Path, srvae, guide, config, history, metrics) -> list[str]:
    from training.checkpoint import save_checkpoint

    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    with open(out / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    save_checkpoint(out / "checkpoint.pt", srvae, guide, config, history=history, metrics=metrics)
    return ["config.json", "history.csv", "metrics.json", "checkpoint.pt"]


def progress_lines(epochs: int):
    """Without a terminal, a line every tenth of the run instead of a progress bar."""
    every = max(1, epochs // 10)

    def report(row):
        if row["epoch"] % every == 0 or row["epoch"] == epochs:
            print(f"epoch {row['epoch']:>5}/{epochs}  train −ELBO {row['train_loss']:9.2f}/image  "
                  f"test {row['test_loss']:9.2f}/image  {row['seconds']:6.1f} s", file=sys.stderr, flush=True)
    return report


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check(args)
        device = resolve_device(args.device)
        out = prepare_out(args.out or Path("runs") / f"{args.dataset}-{args.model}-{args.guide}-{args.prior}")
    except UsageError as error:
        print(f"run.py: error: {error}", file=sys.stderr)
        return 2

    import pyro

    from data import load_dataset
    from evaluation.report import evaluate_run, summary, write_figures
    from training.build import build_model_and_guide
    from training.loop import train
    from training.objectives import make_objective

    data = load_dataset(args.dataset).to(device)
    data.discrete = args.likelihood == "discretized"
    config = {**{k: v for k, v in vars(args).items() if k != "out"}, "device": device, "out": str(out),
              "gamma_init": 0.1, "image_shape": list(data.image_shape), "levels": data.levels}
    pyro.set_rng_seed(args.seed)
    pyro.enable_validation(False)  # argument checks cost time in the hot loop; the tests run with them on
    srvae, guide = build_model_and_guide(config, data.image_shape, device)
    loss = make_objective(args.objective, srvae, guide, args.mixture_kl, args.particles)

    interactive = sys.stderr.isatty()
    start = time.perf_counter()
    history = train(srvae, guide, data, loss, args.epochs, args.batch_size, args.lr, test_x=data.test_images(),
                    progress=interactive, on_epoch=None if interactive else progress_lines(args.epochs))
    seconds = time.perf_counter() - start

    print("evaluating on the test set …", file=sys.stderr, flush=True)
    metrics = {**evaluate_run(srvae, guide, data, config), "train_seconds": seconds}
    written = write_outputs(out, srvae, guide, config, history, metrics)
    written += write_figures(srvae, guide, data, config, history, metrics, out)
    print(summary(metrics, config, seconds))
    print(f"outputs in {out}/: {' '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
