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
from data.errors import one_line
from guides import GUIDES, VAE_GUIDES
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
                   help="how q(u|y) and q(z|x) get their parameters (SPEC §5): amortized = encoder networks; "
                        "local = free parameters per image, fitted for new images with the model frozen "
                        "(--local-steps); semi-amortized = the encoders' output refined by --refine-steps "
                        "gradient steps of the batch ELBO [%(default)s]")
    m.add_argument("--refine-steps", type=int, default=5,
                   help="refinement steps of the semi-amortized guide [%(default)s]")
    m.add_argument("--refine-lr", type=positive(float), default=0.01,
                   help="step size of each refinement step [%(default)s]")
    m.add_argument("--prior", default="normal", choices=list(PRIORS),
                   help="p(u) (SPEC §6): " + "; ".join(f"{k} = {v}" for k, v in PRIORS.items()) + " [%(default)s]")
    m.add_argument("--components", type=positive(int), default=10,
                   help="mixture components K for --prior mog, pseudo-inputs K for --prior vamp [%(default)s]")
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
    t.add_argument("--kl-warmup", type=int, default=0, metavar="EPOCHS",
                   help="scale the KL terms from 0 to 1 over this many epochs (0 = no warm-up); the reported "
                        "ELBO is always the unscaled one [%(default)s]")
    t.add_argument("--seed", type=int, default=0, help="seeds initialisation, training and evaluation [%(default)s]")
    t.add_argument("--device", default="auto", choices=DEVICES,
                   help="auto = cuda when available, else cpu [%(default)s]")

    e = p.add_argument_group("evaluation and output")
    e.add_argument("--evaluate", type=Path, metavar="CHECKPOINT",
                   help="evaluate the checkpoint.pt of a finished run on the test set of --dataset instead of "
                        "training (its configuration fixes the model; the flags below still apply)")
    e.add_argument("--local-steps", type=int, default=500,
                   help="SVI steps that fit a local guide's parameters for the test images, the model frozen, "
                        "before anything is evaluated [%(default)s]")
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
                        "the model given y; 0 = the trained guide's q(·|y) "
                        "[300 for --model vae or --guide local, else 0]")
    e.add_argument("--sr-proposals", type=int, default=None,
                   help="resample the SR draws, weighted by the model, from this many proposals per image; "
                        "0 = take the draws as they are [1000 for --model vae or --guide local, else 0]")
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
    if args.model == "vae" and args.guide not in VAE_GUIDES:
        raise UsageError(f"--guide {args.guide} works with --model srvae only; the VAE baseline takes "
                         f"{', '.join(VAE_GUIDES)}")
    if args.guide == "local" and args.local_steps < 1:
        raise UsageError(f"--guide local needs --local-steps ≥ 1 to fit the test images before evaluating, "
                         f"got {args.local_steps}")
    if args.guide == "local" and args.sr_fit_steps == 0:
        raise UsageError("--guide local has no q(u | y) for super-resolution: keep --sr-fit-steps above 0")
    if args.eval_repeats < 2:
        raise UsageError(f"--eval-repeats must be at least 2 for a standard error, got {args.eval_repeats}")
    for flag in ("sr_proposals", "sr_fit_steps", "kl_warmup", "refine_steps"):
        if getattr(args, flag) is not None and getattr(args, flag) < 0:
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
            test = f"test {row['test_loss']:9.2f}/image  " if "test_loss" in row else ""
            print(f"epoch {row['epoch']:>5}/{epochs}  train −ELBO {row['train_loss']:9.2f}/image  "
                  f"{test}{row['seconds']:6.1f} s", file=sys.stderr, flush=True)
    return report


EVALUATION_KEYS = ("eval_particles", "eval_repeats", "iw_samples", "sr_samples", "sr_proposals", "sr_fit_steps",
                   "seed", "mixture_kl", "local_steps")


def open_checkpoint(args, device):
    """The checkpoint of ``--evaluate``, the data set to evaluate it on, and the model and guide it
    holds: every check made before anything is written."""
    from data import load_dataset
    from training.build import build_model_and_guide
    from training.checkpoint import CHECKPOINT_FORMAT, load_checkpoint

    path = args.evaluate
    if not path.is_file():
        raise UsageError(f"--evaluate {path}: no such file; give the checkpoint.pt of a finished run")
    try:
        checkpoint = load_checkpoint(path, map_location=device)
    except Exception as error:  # a corrupt file, or one that is not tensors and plain values
        raise UsageError(f"--evaluate {path}: not a readable checkpoint ({one_line(error, 120)})") from None
    if not isinstance(checkpoint, dict) or not {"format", "config", "srvae", "guide"} <= set(checkpoint):
        raise UsageError(f"--evaluate {path}: not an SRVAE-Pyro checkpoint (missing config or state dicts)")
    if checkpoint["format"] != CHECKPOINT_FORMAT:
        raise UsageError(f"--evaluate {path}: checkpoint format {checkpoint['format']}, this version reads "
                         f"format {CHECKPOINT_FORMAT}")
    trained_on = checkpoint["config"]["dataset"]
    if args.dataset != trained_on:
        raise UsageError(f"--evaluate {path}: the checkpoint was trained on {trained_on}, not {args.dataset}; "
                         f"pass --dataset {trained_on}")
    data = load_dataset(args.dataset)
    shape = list(checkpoint["config"]["image_shape"])
    if list(data.image_shape) != shape:
        raise UsageError(f"--evaluate {path}: the checkpoint expects images of shape {shape}, "
                         f"{args.dataset} has {list(data.image_shape)}")
    model, guide = build_model_and_guide(checkpoint["config"], data.image_shape, device)
    try:
        model.load_state_dict(checkpoint["srvae"])
        guide.load_state_dict(checkpoint["guide"])
    except RuntimeError:
        raise UsageError(f"--evaluate {path}: its state dicts do not match the architecture its configuration "
                         "describes") from None
    return checkpoint, data, (model, guide)


def fill_sr_defaults(config: dict) -> dict:
    """SR needs a posterior given y alone: the amortized SRVAE guide has q(u|y); the VAE's encoder
    and a local guide have none, so a posterior is fitted to y and resampled."""
    fitted = config.get("model") == "vae" or config.get("guide") == "local"
    for key, fitted_default in (("sr_proposals", 1000), ("sr_fit_steps", 300)):
        if config.get(key) is None:
            config[key] = fitted_default if fitted else 0
    return config


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check(args)
        device = resolve_device(args.device)
        if args.evaluate:
            checkpoint, data, trained = open_checkpoint(args, device)
            default_out = args.evaluate.parent / "evaluation"
        else:
            checkpoint, data, trained = None, None, None
            default_out = Path("runs") / f"{args.dataset}-{args.model}-{args.guide}-{args.prior}"
        out = prepare_out(args.out or default_out)
    except UsageError as error:
        print(f"run.py: error: {error}", file=sys.stderr)
        return 2

    import pyro

    pyro.enable_validation(False)  # argument checks cost time in the hot loop; the tests run with them on
    if checkpoint is None:
        return train_and_evaluate(args, device, out)
    return evaluate_checkpoint(args, checkpoint, data, trained, device, out)


def train_and_evaluate(args, device, out: Path) -> int:
    import pyro

    from data import load_dataset
    from evaluation.report import evaluate_run, summary, write_figures
    from training.build import build_model_and_guide
    from training.loop import train
    from training.objectives import make_objective

    data = load_dataset(args.dataset).to(device)
    data.discrete = args.likelihood == "discretized"
    config = fill_sr_defaults({**{k: v for k, v in vars(args).items() if k not in ("out", "evaluate")},
                               "device": device, "out": str(out), "gamma_init": 0.1,
                               "image_shape": list(data.image_shape), "levels": data.levels,
                               "train_images": len(data.train_values)})
    pyro.set_rng_seed(args.seed)
    model, guide = build_model_and_guide(config, data.image_shape, device)
    loss = make_objective(args.objective, model, guide, args.mixture_kl, args.particles)

    interactive = sys.stderr.isatty()
    start = time.perf_counter()
    history = train(model, guide, data, loss, args.epochs, args.batch_size, args.lr, test_x=data.test_images(),
                    progress=interactive, on_epoch=None if interactive else progress_lines(args.epochs),
                    kl_warmup=args.kl_warmup)
    seconds = time.perf_counter() - start

    print("evaluating on the test set …", file=sys.stderr, flush=True)
    metrics = {**evaluate_run(model, guide, data, config), "train_seconds": seconds}
    written = write_outputs(out, model, guide, config, history, metrics)
    written += write_figures(model, guide, data, config, history, metrics, out)
    print(summary(metrics, config, seconds))
    print(f"outputs in {out}/: {' '.join(written)}")
    return 0


def evaluate_checkpoint(args, checkpoint: dict, data, trained, device, out: Path) -> int:
    """``--evaluate``: the trained model of a checkpoint, measured afresh (no training)."""
    from evaluation.report import evaluate_run, summary, write_figures

    model, guide = trained
    config = fill_sr_defaults({**checkpoint["config"], **{k: getattr(args, k) for k in EVALUATION_KEYS},
                               "device": device, "out": str(out), "evaluated_checkpoint": str(args.evaluate)})
    data = data.to(device)
    data.discrete = config.get("likelihood") == "discretized"
    print(f"evaluating {args.evaluate} on the {config['dataset']} test set …", file=sys.stderr, flush=True)
    metrics = evaluate_run(model, guide, data, config)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    written = ["config.json", "metrics.json"]
    written += write_figures(model, guide, data, config, checkpoint.get("history") or [], metrics, out)
    print(summary(metrics, config, metrics.get("train_seconds", 0.0)))
    print(f"outputs in {out}/: {' '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
