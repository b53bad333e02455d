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
from data.errors import DataError, one_line
from guides import GUIDES, VAE_GUIDES
from model import PRIORS
from model.elbo import MIXTURE_KL
from model.networks import ARCHITECTURES, default_architecture
from training.build import MODELS
from training.objectives import JIT_GUIDES, OBJECTIVES

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
    m.add_argument("--arch", default="auto", choices=["auto", *ARCHITECTURES],
                   help="the networks: " + "; ".join(f"{k} = {v}" for k, v in ARCHITECTURES.items())
                        + "; auto = conv for images of 28×28 and larger, else mlp [%(default)s]")
    m.add_argument("--hidden", type=positive(int), default=256,
                   help="width of every fully connected hidden layer (the conv networks' Gaussian heads "
                        "too) [%(default)s]")
    m.add_argument("--depth", type=positive(int), default=2,
                   help="hidden layers per fully connected network [%(default)s]")
    m.add_argument("--channels", type=positive(int), default=32,
                   help="feature maps of every convolution (--arch conv) [%(default)s]")
    m.add_argument("--blocks", type=positive(int), default=1,
                   help="residual blocks per resolution (--arch conv) [%(default)s]")
    m.add_argument("--gamma-min", type=positive(float), default=1e-3,
                   help="floor of the decoder standard deviations γ₁, γ₂ [%(default)s]")

    d = p.add_argument_group("data")
    d.add_argument("--dataset", default="digits", choices=list(DATASETS),
                   help="; ".join(f"{k} = {v}" for k, v in DATASETS.items()) + " [%(default)s]")
    d.add_argument("--data-dir", type=Path, default=Path("data"),
                   help="where mnist, fashion-mnist and cifar10 are (torchvision's layout), or the folder "
                        "holding hr/ and lr/ for --dataset folder [%(default)s]")
    d.add_argument("--download", action="store_true",
                   help="download mnist, fashion-mnist or cifar10 into --data-dir if missing (needs a network)")
    d.add_argument("--crop", type=positive(int), default=None, metavar="P",
                   help="--dataset folder: train on random P×P patches of x and the matching (P/s)×(P/s) "
                        "patches of y (fixed patches for the test images); P a multiple of --scale")
    d.add_argument("--test-images", type=positive(int), default=1000,
                   help="evaluate on the first N test images (the digits have 359) [%(default)s]")
    d.add_argument("--scale", type=int, default=2, choices=(2, 4),
                   help="downscaling factor s of y = d(x); with measured LR images (a folder with lr/) the "
                        "HR/LR size ratio [%(default)s]")
    d.add_argument("--downscale", default="area", choices=DOWNSCALE_MODES, help="how d(x) downscales [%(default)s]")

    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=positive(int), default=None,
                   help="passes over the training set [200 for digits and folder, 20 for the torchvision sets]")
    t.add_argument("--batch-size", type=positive(int), default=64, help="images per step [%(default)s]")
    t.add_argument("--lr", type=positive(float), default=1e-3, help="Adam learning rate [%(default)s]")
    t.add_argument("--kl-warmup", type=int, default=0, metavar="EPOCHS",
                   help="scale the KL terms from 0 to 1 over this many epochs (0 = no warm-up); the reported "
                        "ELBO is always the unscaled one [%(default)s]")
    t.add_argument("--amp", action="store_true",
                   help="mixed precision: training steps under bfloat16 autocast (fast on recent GPUs, slow on "
                        "most CPUs); the explicit-ELBO cross-check still passes under it (tests/test_amp.py); "
                        "evaluation stays float32")
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
    if args.objective == "pyro-jit" and (args.guide not in JIT_GUIDES or args.kl_warmup):
        raise UsageError(f"--objective pyro-jit compiles the ELBO once: it takes --guide {' or '.join(JIT_GUIDES)} "
                         "and no --kl-warmup; use --objective pyro")
    if args.crop is not None and args.dataset != "folder":
        raise UsageError(f"--crop works with --dataset folder only (the {args.dataset} images are used whole)")
    if args.download and args.dataset in ("digits", "folder"):
        raise UsageError(f"--download fetches mnist, fashion-mnist or cifar10; {args.dataset} has nothing to "
                         "download")


def load_data(args, scale: int, crop: int | None):
    """The data set of ``--dataset`` with at most ``--test-images`` test images; a missing or bad
    file is a UsageError naming it."""
    from data import load_dataset

    try:
        data = load_dataset(args.dataset, args.data_dir, args.download, scale, crop)
    except DataError as error:
        raise UsageError(str(error)) from None
    return data.test_subset(args.test_images)


def check_data(args, data) -> None:
    """The checks of a training run that need the data."""
    if args.likelihood == "discretized" and data.levels is None:
        kind = "continuous" if not data.integer else "integer, with bands of different ranges"
        raise UsageError(f"--likelihood discretized needs pixels on one grid of levels; the {args.dataset} "
                         f"pixels are {kind}: use --likelihood gaussian")
    if args.model == "vae" and data.paired:
        raise UsageError(f"--model vae assumes y = d(x), but {args.data_dir}/lr/ holds measured LR images: use "
                         "--model srvae, or move lr/ away to train on y = d(x)")


def place(data, device: str):
    """Data on the device once when they fit in a quarter of its free memory; else the training
    images stay in host memory and come through a DataLoader (the test images always move)."""
    import torch

    if device == "cpu":
        return data
    stored = sum(t.nbytes for t in (data.train_values, data.train_lr) if t is not None)
    return data.to(device, train=stored <= torch.cuda.mem_get_info()[0] / 4)


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
    holds: every check made before anything is written. The data are normalized with the map saved
    in the checkpoint (not one recomputed from the files), so outputs map back to the trained units."""
    import torch

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
    config = checkpoint["config"]
    data = load_data(args, config["scale"], config.get("crop"))
    if "normalization" in config:
        data.low, data.span = (torch.tensor(config["normalization"][k]) for k in ("low", "span"))
    shape = list(config["image_shape"])
    if list(data.image_shape) != shape:
        raise UsageError(f"--evaluate {path}: the checkpoint expects images of shape {shape}, "
                         f"{args.dataset} has {list(data.image_shape)}")
    model, guide = build_model_and_guide(config, data.image_shape, device)
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
    if args.epochs is None:
        args.epochs = 200 if args.dataset in ("digits", "folder") else 20
    try:
        check(args)
        device = resolve_device(args.device)
        if args.evaluate:
            checkpoint, data, trained = open_checkpoint(args, device)
            default_out = args.evaluate.parent / "evaluation"
        else:
            checkpoint, trained = None, None
            data = load_data(args, args.scale, args.crop)
            check_data(args, data)
            default_out = Path("runs") / f"{args.dataset}-{args.model}-{args.guide}-{args.prior}"
        out = prepare_out(args.out or default_out)
    except UsageError as error:
        print(f"run.py: error: {error}", file=sys.stderr)
        return 2

    import pyro

    pyro.enable_validation(False)  # argument checks cost time in the hot loop; the tests run with them on
    if checkpoint is None:
        return train_and_evaluate(args, data, device, out)
    return evaluate_checkpoint(args, checkpoint, data, trained, device, out)


def train_and_evaluate(args, data, device, out: Path) -> int:
    import pyro

    from evaluation.report import evaluate_run, summary, write_figures
    from training.build import build_model_and_guide
    from training.loop import train
    from training.objectives import make_objective

    data = place(data, device)
    data.discrete = args.likelihood == "discretized"
    config = fill_sr_defaults({**{k: v for k, v in vars(args).items() if k not in ("out", "evaluate")},
                               "device": device, "out": str(out), "gamma_init": 0.1, "data_dir": str(args.data_dir),
                               "arch": default_architecture(data.image_shape) if args.arch == "auto" else args.arch,
                               "image_shape": list(data.image_shape), "levels": data.levels,
                               "normalization": data.normalization, "paired": data.paired,
                               "train_images": len(data.train_values), "test_images": len(data.test_values)})
    pyro.set_rng_seed(args.seed)
    model, guide = build_model_and_guide(config, data.image_shape, device)
    loss = make_objective(args.objective, model, guide, args.mixture_kl, args.particles)

    interactive = sys.stderr.isatty()
    start = time.perf_counter()
    test_x, test_y = data.test_pair()
    history = train(model, guide, data, loss, args.epochs, args.batch_size, args.lr, test_x=test_x, test_y=test_y,
                    progress=interactive, on_epoch=None if interactive else progress_lines(args.epochs),
                    kl_warmup=args.kl_warmup, device=device, amp=args.amp)
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
                               "device": device, "out": str(out), "evaluated_checkpoint": str(args.evaluate),
                               "data_dir": str(args.data_dir), "test_images": len(data.test_values)})
    data = place(data, device)
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
