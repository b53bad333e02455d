"""SRVAE-Pyro: train the super-resolution VAE on a data set, evaluate it on the test split,
write figures, metrics and a checkpoint, and print a summary.

    python run.py --guide amortized

Exit status: 0 done; 2 bad input (one line on stderr, nothing written); 3 training stopped by
non-finite steps (the last good checkpoint kept); 130 or 143 stopped by Ctrl-C or SIGTERM after
writing a checkpoint (resume with --resume).
"""

import argparse
import math
import sys
from pathlib import Path

from data import DATASETS, DOWNSCALE_MODES, SPLITS
from data.errors import DataError
from guides import GUIDES, VAE_GUIDES, guide_kind
from model import PRIORS
from model.conditionals import NOISE
from model.elbo import MIXTURE_KL
from model.networks import ARCHITECTURES, default_architecture
from training.build import MODELS
from training.objectives import OBJECTIVES
from training.warmup import LR_SCHEDULES

DEVICES = ("auto", "cpu", "cuda")
EVALUATION_KEYS = ("eval_particles", "eval_repeats", "elbo_se", "eval_max_particles", "iw_samples", "sr_samples",
                   "sr_proposals", "sr_fit_steps", "seed", "mixture_kl", "local_steps",
                   "rgb_bands")  # what --evaluate takes from its command line
RESUME_MAY_CHANGE = ("epochs", "lr", "clip_norm", "max_bad_steps", "checkpoint_every", "device", "data_dir",
                     "test_images", *(key for key in EVALUATION_KEYS if key != "seed"))  # all else is the run's


IW_PIXEL_BUDGET = 64_000  # importance draws × pixel values per test image, by default
IW_MIN_SAMPLES = 100
BEFORE_THESE_FLAGS = {"lr_schedule": "constant", "noise": "scalar", "augment": False, "split": "auto",
                      "nll_beta": 0.0, "feature_norm": False}  # older runs


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


def rgb_bands(text: str) -> list[int]:
    """An argparse type: three band indices, R,G,B."""
    try:
        bands = [int(part) for part in text.split(",")]
    except ValueError:
        bands = []
    if len(bands) != 3 or min(bands) < 0:
        raise argparse.ArgumentTypeError(f"expected three band indices R,G,B counted from 0, got {text!r}")
    return bands


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                      allow_abbrev=False)  # so that the flags named on the command line are known (--resume)
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
    m.add_argument("--feature-norm", action=argparse.BooleanOptionalAction, default=True,
                   help="scale the convolutional encoders' features of each image to zero mean and unit variance "
                        "before their Gaussian heads (layer norm), so that Adam's steps cannot grow them without "
                        "bound; no effect with --arch mlp [on]")
    m.add_argument("--noise", default="auto", choices=["auto", *NOISE],
                   help="the scale of p(x | y, z): " + "; ".join(f"{k} = {v}" for k, v in NOISE.items())
                        + "; auto = pixel for the SRVAE with --arch conv, else scalar [%(default)s]")
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
    d.add_argument("--split", default="auto", choices=list(SPLITS),
                   help="--dataset folder, how test images are held out: "
                        + "; ".join(f"{k} = {v}" for k, v in SPLITS.items()) + " [%(default)s]")
    d.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="flip and rotate each training crop by a random symmetry of the square (x and y alike) "
                        "[on for --dataset folder with --crop, else off]")
    d.add_argument("--test-images", type=positive(int), default=1000,
                   help="evaluate on the first N test images (the digits have 359) [%(default)s]")
    d.add_argument("--scale", type=int, default=2, choices=(2, 4),
                   help="downscaling factor s of y = d(x); with measured LR images (a folder with lr/) the "
                        "HR/LR size ratio [%(default)s]")
    d.add_argument("--downscale", default="area", choices=DOWNSCALE_MODES, help="how d(x) downscales [%(default)s]")

    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=positive(int), default=None,
                   help="passes over the training set (with --crop, one crop per chip of the training part per "
                        f"pass) [200 for digits and folder, 20 for the torchvision sets, or as many as make "
                        f"{MIN_STEPS} steps if that is more]")
    t.add_argument("--batch-size", type=positive(int), default=64, help="images per step [%(default)s]")
    t.add_argument("--lr", type=positive(float), default=1e-3, help="Adam learning rate [%(default)s]")
    t.add_argument("--lr-schedule", default="cosine", choices=list(LR_SCHEDULES),
                   help="; ".join(f"{k} = {v}" for k, v in LR_SCHEDULES.items()) + " [%(default)s]")
    t.add_argument("--nll-beta", type=float, default=None, metavar="BETA",
                   help="training only: weigh each pixel's log-density of x by σ^(2·BETA), normalized and not "
                        "differentiated (β-NLL), so that a per-pixel scale does not starve the fit of the mean "
                        "where the detail is; 0 = the ELBO itself; the reported ELBO is always the ELBO "
                        "[0.5 with --noise pixel and --objective pyro, else 0]")
    t.add_argument("--kl-warmup", type=int, default=0, metavar="EPOCHS",
                   help="scale the KL terms from 0 to 1 over this many epochs (0 = no warm-up); the reported "
                        "ELBO is always the unscaled one [%(default)s]")
    t.add_argument("--amp", action="store_true",
                   help="mixed precision: training steps under bfloat16 autocast (fast on recent GPUs, slow on "
                        "most CPUs); the explicit-ELBO cross-check still passes under it (tests/test_amp.py); "
                        "evaluation stays float32")
    t.add_argument("--clip-norm", type=positive(float), default=None, metavar="C",
                   help="clip the gradient's global L2 norm to C before each Adam step; a few times the "
                        "grad_norm_median of history.csv guards against late breakdowns [no clipping]")
    t.add_argument("--max-bad-steps", type=positive(int), default=10, metavar="N",
                   help="a step with a non-finite loss or gradient is skipped and counted; stop (exit 3) after N "
                        "in a row, keeping the last good checkpoint [%(default)s]")
    t.add_argument("--checkpoint-every", type=int, default=0, metavar="STEPS",
                   help="write checkpoint.pt every STEPS steps as well as after every epoch (0 = after every "
                        "epoch only) [%(default)s]")
    t.add_argument("--resume", type=Path, metavar="OUT_DIR",
                   help="continue the run in OUT_DIR from its last checkpoint, with its configuration; only "
                        + ", ".join(f"--{key.replace('_', '-')}" for key in RESUME_MAY_CHANGE)
                        + " may be given anew (more --epochs extend a finished run, which is then evaluated again)")
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
    e.add_argument("--eval-particles", type=positive(int), default=16,
                   help="particles per test image in each repeat of an ELBO estimate [%(default)s]")
    e.add_argument("--eval-repeats", type=positive(int), default=4,
                   help="independent repeats of each ELBO estimate before its standard error is judged "
                        "(at least 2) [%(default)s]")
    e.add_argument("--elbo-se", type=positive(float), default=0.05, metavar="NATS",
                   help="the standard error per image each ELBO estimate repeats until it reaches, from "
                        "the first repeats' spread [%(default)s]")
    e.add_argument("--eval-max-particles", type=positive(int), default=256, metavar="N",
                   help="the most particles per test image an ELBO estimate takes in all, whatever its "
                        "standard error [%(default)s]")
    e.add_argument("--iw-samples", type=positive(int), default=None,
                   help="importance samples K per test image for the estimate of log p(x, y) [1000 for images "
                        f"of up to {IW_PIXEL_BUDGET // 1000} pixel values (the 8×8 digits), fewer for larger "
                        f"ones, as many as keep K × pixels ≤ {IW_PIXEL_BUDGET}, at least {IW_MIN_SAMPLES}]")
    e.add_argument("--sr-samples", type=positive(int), default=100,
                   help="samples of x per LR image for super-resolution [%(default)s]")
    e.add_argument("--sr-fit-steps", type=int, default=None,
                   help="super-resolve from a Gaussian posterior per LR image fitted by this many SVI steps to "
                        "the model given y; 0 = the trained guide's q(·|y) "
                        "[300 for --model vae or --guide local, else 0]")
    e.add_argument("--sr-proposals", type=int, default=None,
                   help="resample the SR draws, weighted by the model, from this many proposals per image; "
                        "0 = take the draws as they are [1000 for --model vae or --guide local, else 0]")
    e.add_argument("--rgb-bands", type=rgb_bands, default=None, metavar="R,G,B",
                   help="the bands shown as red, green and blue in the figures, counted from 0 (for example "
                        "2,1,0 for Sentinel-2's B02, B03, B04, B08); display only [0,1,2 for 3 bands, else the mean "
                        "of the bands in grey]")
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
    for flag in ("sr_proposals", "sr_fit_steps", "kl_warmup", "refine_steps", "checkpoint_every"):
        if getattr(args, flag) is not None and getattr(args, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be 0 or more, got {getattr(args, flag)}")
    if args.model == "vae" and args.noise in ("band", "pixel"):
        raise UsageError(f"--noise {args.noise} is a scale of the SRVAE's p(x | y, z); the VAE baseline has one γ: "
                         "drop --noise, or use --model srvae")
    if args.nll_beta is not None and not 0 <= args.nll_beta <= 1:
        raise UsageError(f"--nll-beta must be between 0 (the ELBO) and 1 (the squared error's weighting), got "
                         f"{args.nll_beta}")
    if args.nll_beta and args.objective != "pyro":
        raise UsageError(f"--nll-beta weighs the pixels through Pyro's Trace_ELBO: use --objective pyro, not "
                         f"{args.objective}")
    if args.objective == "pyro-jit" and (not guide_kind(args.guide, args.model).compiles or args.kl_warmup):
        compiling = " or ".join(name for name, kind in GUIDES.items() if kind.compiles)
        raise UsageError(f"--objective pyro-jit compiles the ELBO once: it takes --guide {compiling} and no "
                         "--kl-warmup; use --objective pyro")
    for flag, value, default in (("crop", args.crop, None), ("split", args.split, "auto"),
                                 ("augment", args.augment, False)):
        if value != default and value is not None and args.dataset != "folder":
            raise UsageError(f"--{flag} works with --dataset folder only (the {args.dataset} images are used whole)")
    if args.download and args.dataset in ("digits", "folder"):
        raise UsageError(f"--download fetches mnist, fashion-mnist or cifar10; {args.dataset} has nothing to "
                         "download")


def load_data(args, scale: int, crop: int | None, split: str = "auto", augment: bool = False, likelihood="gaussian",
              normalization: dict | None = None):
    """The data set of ``--dataset`` with at most ``--test-images`` test images, on the discrete grid for
    the discretized ``likelihood``, normalized with a run's saved map when given; a missing or bad file
    is a UsageError naming it."""
    from data import load_dataset

    try:
        data = load_dataset(args.dataset, args.data_dir, args.download, scale, crop, split, augment,
                            discrete=likelihood == "discretized", normalization=normalization)
    except DataError as error:
        raise UsageError(str(error)) from None
    return data.test_subset(args.test_images)


def check_bands(args, data) -> None:
    """--rgb-bands names bands the images have."""
    bands = data.image_shape[0]
    if args.rgb_bands is not None and max(args.rgb_bands) >= bands:
        raise UsageError(f"--rgb-bands {','.join(map(str, args.rgb_bands))}: the {args.dataset} images have {bands} "
                         f"band(s), counted from 0 to {bands - 1}")


def check_data(args, data) -> None:
    """The checks of a training run that need the data."""
    check_bands(args, data)
    if args.augment and data.image_shape[1] != data.image_shape[2]:
        raise UsageError(f"--augment rotates the training images by 90°, which needs them square, but they are "
                         f"{data.image_shape[1]}×{data.image_shape[2]}: give --crop P, or --no-augment")
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


def write_outputs(out: Path, checkpoints, config, history, metrics) -> list[str]:
    """The run's config, history and metrics, and its final checkpoint (which can still be resumed,
    e.g. with more --epochs), each written atomically."""
    from training.checkpoint import write_history, write_json

    write_json(out / "config.json", config)
    write_history(out / "history.csv", history)
    write_json(out / "metrics.json", metrics)
    checkpoints.save(history=history, metrics=metrics)
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


def open_checkpoint(args, device):
    """The checkpoint of ``--evaluate``, the data set to evaluate it on, and the model and guide it
    holds: every check made before anything is written. The data are normalized with the map saved
    in the checkpoint (not one recomputed from the files), so outputs map back to the trained units."""
    from training.build import build_model_and_guide
    from training.checkpoint import CheckpointError, load_states, read_checkpoint

    path = args.evaluate
    try:
        checkpoint = read_checkpoint(path, map_location=device)
    except CheckpointError as error:
        hint = "; give the checkpoint.pt of a finished run" if not path.is_file() else ""
        raise UsageError(f"--evaluate {path}: {error}{hint}") from None
    trained_on = checkpoint["config"]["dataset"]
    if args.dataset != trained_on:
        raise UsageError(f"--evaluate {path}: the checkpoint was trained on {trained_on}, not {args.dataset}; "
                         f"pass --dataset {trained_on}")
    config = checkpoint["config"]
    data = load_data(args, config["scale"], config.get("crop"), config.get("split", "auto"),
                     likelihood=config.get("likelihood", "gaussian"), normalization=config.get("normalization"))
    check_bands(args, data)
    shape = list(config["image_shape"])
    if list(data.image_shape) != shape:
        raise UsageError(f"--evaluate {path}: the checkpoint expects images of shape {shape}, "
                         f"{args.dataset} has {list(data.image_shape)}")
    model, guide = build_model_and_guide(config, data.image_shape, device)
    try:
        load_states(checkpoint, model, guide)
    except CheckpointError as error:
        raise UsageError(f"--evaluate {path}: {error}") from None
    return checkpoint, data, (model, guide)


def given_flags(parser, argv) -> set:
    """The destinations of the options named in ``argv`` (abbreviations are off, so names are whole)."""
    names = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    return {action.dest for action in parser._actions if names & set(action.option_strings)}


def open_resume(args, given: set):
    """``--resume OUT_DIR``: its checkpoint (with training state) and the arguments of the run it
    continues, those of ``RESUME_MAY_CHANGE`` taken from the command line; ``UsageError`` for a
    missing, unreadable or foreign checkpoint and for a flag that would change the run."""
    from training.checkpoint import CheckpointError, read_checkpoint
    from training.distributed import launched_world_size

    folder = args.resume
    for clash in ("evaluate", "out"):
        if clash in given:
            raise UsageError(f"--resume {folder}: a resumed run writes into its own folder and trains; drop "
                             f"--{clash}")
    if not folder.is_dir():
        raise UsageError(f"--resume {folder}: no such folder; give the output folder of an earlier run")
    try:
        checkpoint = read_checkpoint(folder / "checkpoint.pt")
    except CheckpointError as error:
        raise UsageError(f"--resume {folder}: checkpoint.pt: {error}") from None
    if not isinstance(checkpoint.get("training"), dict):
        raise UsageError(f"--resume {folder}: its checkpoint holds no training state (written before resuming "
                         "existed); it can only be evaluated, with --evaluate")
    processes, now = len(checkpoint["training"].get("ranks", [])) or 1, launched_world_size()
    if processes != now:
        raise UsageError(f"--resume {folder}: the run was trained by {processes} process(es), and this launch has "
                         f"{now}; each process resumes its own shards and random streams: {launch(processes)} "
                         f"--resume {folder}")
    config = {**BEFORE_THESE_FLAGS, **checkpoint["config"]}
    resumed = argparse.Namespace(**vars(args))
    for key, value in config.items():
        if hasattr(resumed, key) and key not in given:
            setattr(resumed, key, value)
    for key in sorted(given - set(RESUME_MAY_CHANGE) - {"resume"}):
        if key in config and getattr(args, key) != config[key]:
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"--resume {folder}: the run was made with {flag} {config[key]}, and a resumed run "
                             f"keeps its model, data and seed: drop {flag} {getattr(args, key)}, or start a new run")
    resumed.data_dir, resumed.evaluate, resumed.out = Path(resumed.data_dir), None, folder
    done = checkpoint["training"]["progress"]["epoch"]
    if resumed.epochs < done:
        raise UsageError(f"--resume {folder}: the run has done {done} epochs already; --epochs must be at least that")
    return checkpoint, resumed


MIN_STEPS = 4000  # the default training budget's floor, in Adam steps


def default_epochs(dataset: str, images: int, batch_size: int, processes: int = 1) -> int:
    """200 epochs for the digits and folder data, 20 for the torchvision sets, and more where that
    would be fewer than ``MIN_STEPS`` steps (a small data set, or few crops per epoch)."""
    steps_per_epoch = math.ceil(images / (batch_size * processes))
    return max(200 if dataset in ("digits", "folder") else 20, math.ceil(MIN_STEPS / steps_per_epoch))


def clip_advice(typical_norm: float) -> str:
    """', or --clip-norm C' with C five times the run's own median gradient norm (nothing before any)."""
    return "" if math.isnan(typical_norm) else f" or --clip-norm {5 * typical_norm:.2g}"


def launch(processes: int) -> str:
    """The command that starts run.py in ``processes`` processes."""
    return f"torchrun --nproc_per_node={processes} run.py" if processes > 1 else "python run.py"


def check_resumed_data(args, data, checkpoint: dict) -> None:
    """The data of a resumed run are the ones it trained on: same image shape and number of images."""
    config = checkpoint["config"]
    before = [list(config["image_shape"]), config["train_images"]]
    now = [list(data.image_shape), len(data.train_values)]
    if now != before:
        raise UsageError(f"--resume {args.resume}: the run trained on {before[1]} images of shape {before[0]}, but "
                         f"{args.dataset} in {args.data_dir} now gives {now[1]} of shape {now[0]}: restore those "
                         "images, or start a new run")


def default_iw_samples(image_shape) -> int:
    """K for the importance-weighted estimate: 1000 for the 8×8 digits, and for larger images as many as
    keep the draws × pixel values per test image within ``IW_PIXEL_BUDGET`` (at least ``IW_MIN_SAMPLES``),
    so that its cost per test image does not grow with the image."""
    return min(1000, max(IW_MIN_SAMPLES, IW_PIXEL_BUDGET // math.prod(image_shape)))


def fill_evaluation_defaults(config: dict) -> dict:
    """The evaluation's defaults that depend on the run: K by the image size (``default_iw_samples``);
    and SR needs a posterior given y alone: the amortized SRVAE guide has q(u|y); the VAE's encoder
    and a local guide have none, so a posterior is fitted to y and resampled."""
    if config.get("iw_samples") is None:
        config["iw_samples"] = default_iw_samples(config["image_shape"])
    fitted = not guide_kind(config["guide"], config.get("model", "srvae")).super_resolves_from_y
    for key, fitted_default in (("sr_proposals", 1000), ("sr_fit_steps", 300)):
        if config.get(key) is None:
            config[key] = fitted_default if fitted else 0
    return config


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ranks = open_ranks(args)  # one process, or one of torchrun's
    resume, failure = None, None
    try:
        if args.resume:
            resume, args = open_resume(args, given_flags(parser, sys.argv[1:] if argv is None else argv))
        if args.augment is None:
            args.augment = args.dataset == "folder" and args.crop is not None
        check(args)
        check_distributed(args, ranks)
        device = resolve_device(args.device) if ranks.world_size == 1 else str(ranks.device)
        if args.evaluate:
            checkpoint, data, trained = open_checkpoint(args, device)
            default_out = args.evaluate.parent / "evaluation"
        else:
            checkpoint, trained = None, None
            data = load_data(args, args.scale, args.crop, args.split, args.augment, args.likelihood,
                             None if resume is None else resume["config"].get("normalization"))
            check_data(args, data)
            if args.epochs is None:
                args.epochs = default_epochs(args.dataset, len(data.train_values), args.batch_size, ranks.world_size)
            if resume is not None:
                check_resumed_data(args, data, resume)
            default_out = Path("runs") / f"{args.dataset}-{args.model}-{args.guide}-{args.prior}"
        out = args.resume or args.out or default_out
        if ranks.rank == 0:  # the one process that writes
            prepare_out(out)
    except UsageError as error:
        failure = str(error)
    failures = ranks.gather(failure)  # every process stops if any must; one line says why
    if any(failures):
        if ranks.rank == 0 and failure:
            print(f"run.py: error: {failure}", file=sys.stderr)
        elif failure and not failures[0]:  # a refusal that process 0 did not share
            print(f"run.py: error (process {ranks.rank}): {failure}", file=sys.stderr)
        ranks.close()
        return 2

    import pyro

    pyro.enable_validation(False)  # argument checks cost time in the hot loop; the tests run with them on
    try:
        if checkpoint is None:
            status = train_and_evaluate(args, data, device, out, resume, ranks)
        else:
            status = evaluate_checkpoint(args, checkpoint, data, trained, device, out)
    except UsageError as error:  # found once the modules are built (by every process), before any write
        if ranks.rank == 0:
            print(f"run.py: error: {error}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:  # outside training, which stops on its own (stop_on_signals)
        saved = f"; the trained model is in {out}/checkpoint.pt: python run.py --resume {out} evaluates it" \
            if checkpoint is None else ""
        print(f"\nrun.py: interrupted{saved}", file=sys.stderr)
        ranks.close(wait=False)
        return 130
    except BaseException:
        ranks.close(wait=False)  # the other processes may be inside a collective: no barrier to wait at
        raise
    ranks.close()
    return status


def open_ranks(args):
    """The process group of a ``torchrun`` launch (NCCL on GPUs, gloo on CPUs), else a single process."""
    from training.distributed import ProcessGroup, SingleProcess, launched_world_size

    if launched_world_size() == 1:
        return SingleProcess()
    import torch

    on_gpu = args.device != "cpu" and torch.cuda.is_available()
    return ProcessGroup("cuda" if on_gpu else "cpu")


def check_distributed(args, ranks) -> None:
    """What data-parallel training supports."""
    if ranks.world_size == 1:
        return
    if args.evaluate:
        raise UsageError("--evaluate runs in one process: python run.py --evaluate …, without torchrun")
    if not guide_kind(args.guide, args.model).data_parallel:
        raise UsageError(f"--guide {args.guide} under torchrun: its per-image parameters (local) or inner "
                         "optimisation (semi-amortized) would differ between processes; use --guide amortized, "
                         "or train in one process")
    if args.objective != "pyro":
        raise UsageError(f"--objective {args.objective} under torchrun: data-parallel training wraps Pyro's "
                         "Trace_ELBO in DistributedDataParallel; use --objective pyro")


def run_config(args, data, device, out: Path) -> dict:
    """Everything that defines a training run, what it was run on, and what produced it."""
    from training.provenance import provenance

    arch = default_architecture(data.image_shape) if args.arch == "auto" else args.arch
    noise = ("pixel" if arch == "conv" and args.model == "srvae" else "scalar") if args.noise == "auto" else args.noise
    nll_beta = (0.5 if noise == "pixel" and args.objective == "pyro" else 0.0) if args.nll_beta is None \
        else args.nll_beta
    return fill_evaluation_defaults({**{k: v for k, v in vars(args).items() if k not in ("out", "evaluate", "resume")},
                             "device": device, "out": str(out), "gamma_init": 0.1, "data_dir": str(args.data_dir),
                             "arch": arch, "noise": noise, "nll_beta": nll_beta,
                             "image_shape": list(data.image_shape), "levels": data.levels,
                             "normalization": data.normalization, "paired": data.paired,
                             "train_images": len(data.train_values), "test_images": len(data.test_values),
                             **provenance()})


def train_and_evaluate(args, data, device, out: Path, resume: dict | None = None, ranks=None) -> int:
    """Train (from the start, or from the checkpoint ``resume``), then evaluate and write everything.
    Under torchrun (``ranks`` of several processes) every process trains on its shards; the processes
    share the importance-weighted evaluation, process 0 does the rest and alone writes and prints,
    and its metrics are sent to all."""
    import pyro

    from evaluation.loglik import importance_weighted_log_likelihood
    from evaluation.report import evaluate_run, summary, write_figures
    from training.build import build_model_and_guide
    from training.checkpoint import CheckpointError, RunCheckpoints, load_states, write_json
    from training.distributed import DataParallelObjective, SingleProcess, shard_order, sharded
    from training.interrupt import stop_on_signals
    from training.loop import Callbacks, Interrupted, NonFiniteSteps, TrainingOptions, train
    from training.objectives import make_objective

    ranks = ranks or SingleProcess()
    writer = ranks.rank == 0
    data = place(data, device)
    config = {**run_config(args, data, device, out), "world_size": ranks.world_size}
    pyro.set_rng_seed(args.seed)
    model, guide = build_model_and_guide(config, data.image_shape, device)
    if resume is not None:
        try:
            load_states(resume, model, guide)
        except CheckpointError as error:
            raise UsageError(f"--resume {out}: checkpoint.pt: {error}") from None
    objective = make_objective(args.objective, model, guide, args.mixture_kl, args.particles, config["nll_beta"])
    order = None
    if ranks.world_size > 1:
        pyro.set_rng_seed(args.seed + ranks.rank)  # the same initial model, but each process its own draws
        objective = DataParallelObjective(objective, ranks)
        order = shard_order(data, args.batch_size, ranks, args.seed)

    checkpoints = RunCheckpoints(out, model, guide, config) if writer else None
    if writer:
        write_json(out / "config.json", config)
    interactive = writer and sys.stderr.isatty()
    options = TrainingOptions(args.epochs, args.batch_size, args.lr, args.lr_schedule, args.kl_warmup, args.amp,
                              args.clip_norm, args.max_bad_steps, args.checkpoint_every, device, monitor_test=True,
                              ranks=ranks, order=order)
    try:
        with stop_on_signals() as stop_requested:
            callbacks = Callbacks(interactive, progress_lines(args.epochs) if writer and not interactive else None,
                                  checkpoints, stop_requested)
            history = train(model, guide, data, objective, options, callbacks,
                            resume=None if resume is None else resume["training"])
    except Interrupted as stop:
        if writer:
            print(f"run.py: interrupted: {stop}; {out}/checkpoint.pt holds that state: continue with "
                  f"{launch(ranks.world_size)} --resume {out}", file=sys.stderr)
        return stop_requested.exit_status
    except NonFiniteSteps as stop:
        if writer:
            print(f"run.py: error: training stopped: {stop}; probable causes: a learning rate too high (--lr "
                  f"{args.lr}), a γ floor too low (--gamma-min {args.gamma_min}) or non-finite pixels; "
                  f"{out}/checkpoint.pt keeps the last good state, written before those steps (after epoch "
                  f"{stop.progress.epoch} or later): resume from it with {launch(ranks.world_size)} --resume {out} "
                  f"--lr {args.lr / 10:g}"
                  f"{clip_advice(stop.progress.typical_norm())}", file=sys.stderr)
        return 3
    seconds = history[-1]["seconds"] if history else 0.0

    metrics = None
    if ranks.world_size == 1:
        print("evaluating on the test set …", file=sys.stderr, flush=True)
        metrics = {**evaluate_run(model, guide, data, config), "train_seconds": seconds}
    else:  # the IW estimate divided among the processes, the rest on process 0
        log_likelihood = sharded(importance_weighted_log_likelihood, ranks)
        if writer:
            print(f"evaluating on the test set ({ranks.world_size} processes share the IW estimate) …",
                  file=sys.stderr, flush=True)
            metrics = {**evaluate_run(model, guide, data, config, log_likelihood), "train_seconds": seconds,
                       "iw_processes": ranks.world_size}
        else:
            pyro.set_rng_seed(args.seed + ranks.rank)
            log_likelihood(model, guide, *data.test_pair(), num_samples=config["iw_samples"])
    metrics = ranks.broadcast(metrics)  # every process returns the same numbers
    if writer:
        written = write_outputs(out, checkpoints, config, history, metrics)
        written += write_figures(model, guide, data, config, history, metrics, out)
        print(summary(metrics, config, seconds))
        print(f"outputs in {out}/: {' '.join(written)}")
    return 0


def evaluate_checkpoint(args, checkpoint: dict, data, trained, device, out: Path) -> int:
    """``--evaluate``: the trained model of a checkpoint, measured afresh (no training)."""
    from evaluation.report import evaluate_run, summary, write_figures
    from training.checkpoint import write_json

    model, guide = trained
    config = fill_evaluation_defaults({**checkpoint["config"], **{k: getattr(args, k) for k in EVALUATION_KEYS},
                               "device": device, "out": str(out), "evaluated_checkpoint": str(args.evaluate),
                               "data_dir": str(args.data_dir), "test_images": len(data.test_values)})
    data = place(data, device)
    print(f"evaluating {args.evaluate} on the {config['dataset']} test set …", file=sys.stderr, flush=True)
    metrics = evaluate_run(model, guide, data, config)
    write_json(out / "config.json", config)
    write_json(out / "metrics.json", metrics)
    written = ["config.json", "metrics.json"]
    written += write_figures(model, guide, data, config, checkpoint.get("history") or [], metrics, out)
    print(summary(metrics, config, metrics.get("train_seconds", 0.0)))
    print(f"outputs in {out}/: {' '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
