"""The command line of ``run.py``: its flags are the settings of ``RunConfig`` (with its defaults), and
parsing gives a ``Request``: the mode, the configuration, and which settings were named."""

import argparse
import math
from dataclasses import dataclass, fields
from pathlib import Path

from data import DATASETS, DOWNSCALE_MODES, SPLITS, UNITS
from experiment.config import IW_MIN_SAMPLES, IW_PIXEL_BUDGET, MIN_STEPS, RESUME_MAY_CHANGE, RunConfig
from guides import GUIDES
from model import PRIORS
from model.conditionals import NOISE
from model.elbo import MIXTURE_KL
from model.networks import ARCHITECTURES
from training.build import MODELS
from training.objectives import OBJECTIVES
from training.warmup import LR_SCHEDULES

DEVICES = ("auto", "cpu", "cuda")
DERIVED = {"gamma_init", "evaluated_checkpoint", "image_shape", "levels", "normalization", "network_units", "paired",
           "train_images", "world_size", "versions", "git_commit", "git_dirty", "version"}  # settings no flag sets
SETTINGS = tuple(f.name for f in fields(RunConfig) if f.name not in DERIVED)
MODES = ("resume", "evaluate", "train_only")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive(kind, zero: bool = False):
    """An argparse type: a finite number of ``kind`` (int or float) that must be > 0 (≥ 0 with ``zero``)."""
    noun = "an integer" if kind is int else "a number"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        positive_enough = value >= 0 if zero else value > 0
        if not positive_enough or not value < math.inf:
            raise argparse.ArgumentTypeError(f"must be {'0 or more' if zero else 'positive'} and finite, got {text}")
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


class Unnamed:
    """The default of every flag when only the flags a command line names are wanted: none."""

    def __getattr__(self, name):
        return argparse.SUPPRESS


class Defaults(RunConfig):
    """``RunConfig``'s defaults, and no run folder or checkpoint (the train mode)."""

    resume = evaluate = None
    train_only = False


def build_parser(description: str | None = None, named_only: bool = False) -> argparse.ArgumentParser:
    """The parser of ``run.py``'s command line: a flag for each setting of ``RunConfig`` the user chooses,
    with its default, and the modes --resume and --evaluate; with ``named_only``, no defaults, so that
    it parses a command line into the flags it names alone."""
    defaults = Unnamed() if named_only else Defaults()
    p = OneLineParser(prog="run.py", description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                      allow_abbrev=False)  # so that the flags named on the command line are known (--resume)
    m = p.add_argument_group("model and inference")
    m.add_argument("--model", default=defaults.model, choices=list(MODELS),
                   help="; ".join(f"{k} = {v}" for k, v in MODELS.items()) + " [%(default)s]")
    m.add_argument("--guide", default=defaults.guide, choices=list(GUIDES),
                   help="how q(u|y) and q(z|x) get their parameters (SPEC §5): amortized = encoder networks; "
                        "local = free parameters per image, fitted for new images with the model frozen "
                        "(--local-steps); semi-amortized = the encoders' output refined by --refine-steps "
                        "gradient steps of the batch ELBO [%(default)s]")
    m.add_argument("--refine-steps", type=int, default=defaults.refine_steps,
                   help="refinement steps of the semi-amortized guide [%(default)s]")
    m.add_argument("--refine-lr", type=positive(float), default=defaults.refine_lr,
                   help="step size of each refinement step [%(default)s]")
    m.add_argument("--prior", default=defaults.prior, choices=list(PRIORS),
                   help="p(u) (SPEC §6): " + "; ".join(f"{k} = {v}" for k, v in PRIORS.items()) + " [%(default)s]")
    m.add_argument("--components", type=positive(int), default=defaults.components,
                   help="mixture components K for --prior mog, pseudo-inputs K for --prior vamp [%(default)s]")
    m.add_argument("--mixture-kl", default=defaults.mixture_kl, choices=MIXTURE_KL,
                   help="KL_u for a mixture prior in the explicit ELBO: tight bound −log Σ w e^−KL, "
                        "the seed's convexity bound Σ w KL, or Monte Carlo [%(default)s]")
    m.add_argument("--likelihood", default=defaults.likelihood,
                   choices=("auto", "gaussian", "discretized", "laplace", "gennorm"),
                   help="decoders: Gaussian densities on dequantized pixels; each Gaussian's mass on the "
                        "pixel's bin with y = d(x) rounded to the same grid (comparable with a VAE); Laplace "
                        "densities, for errors mostly small and sometimes large; or generalized normals whose "
                        "shape, one per band between the Laplace's and tails lighter than the Gaussian's, is "
                        "learned (these two SRVAE only); auto = gennorm where p(x | y, z) has a per-pixel scale "
                        "(--noise pixel, the conv SRVAE's default), else gaussian [%(default)s]")
    m.add_argument("--objective", default=defaults.objective, choices=list(OBJECTIVES),
                   help="training loss: " + "; ".join(f"{k} = {v}" for k, v in OBJECTIVES.items()) + " [%(default)s]")
    m.add_argument("--particles", type=positive(int), default=defaults.particles,
                   help="Monte-Carlo samples per image in the training objective [%(default)s]")
    m.add_argument("--latent-u", type=positive(int), default=defaults.latent_u,
                   help="dimension L_u of u, the code of y [%(default)s]")
    m.add_argument("--latent-z", type=positive(int), default=defaults.latent_z,
                   help="dimension L_z of z, the code of what x adds to y [%(default)s]")
    m.add_argument("--arch", default=defaults.arch, choices=["auto", *ARCHITECTURES],
                   help="the networks: " + "; ".join(f"{k} = {v}" for k, v in ARCHITECTURES.items())
                        + "; auto = conv for images of 28×28 and larger, else mlp [%(default)s]")
    m.add_argument("--hidden", type=positive(int), default=defaults.hidden,
                   help="width of every fully connected hidden layer (the conv networks' Gaussian heads "
                        "too) [%(default)s]")
    m.add_argument("--depth", type=positive(int), default=defaults.depth,
                   help="hidden layers per fully connected network [%(default)s]")
    m.add_argument("--channels", type=positive(int), default=defaults.channels,
                   help="feature maps of every convolution (--arch conv) [%(default)s]")
    m.add_argument("--blocks", type=positive(int), default=defaults.blocks,
                   help="residual blocks per resolution (--arch conv) [%(default)s]")
    m.add_argument("--feature-norm", action=argparse.BooleanOptionalAction, default=defaults.feature_norm,
                   help="scale the convolutional encoders' features of each image to zero mean and unit variance "
                        "before their Gaussian heads (layer norm), so that Adam's steps cannot grow them without "
                        "bound; no effect with --arch mlp [on]")
    m.add_argument("--noise", default=defaults.noise, choices=["auto", *NOISE],
                   help="the scale of p(x | y, z): " + "; ".join(f"{k} = {v}" for k, v in NOISE.items())
                        + "; auto = pixel for the SRVAE with --arch conv, else scalar [%(default)s]")
    m.add_argument("--scale-network", action=argparse.BooleanOptionalAction, default=defaults.scale_network,
                   help="with --noise pixel and --arch conv, compute the per-pixel scales of p(x | y, z) with a "
                        "network of their own rather than a second head of the mean's, which then fits x as a "
                        "deterministic CNN would; --nll-beta defaults to 1 with it, 0.5 without [on]")
    m.add_argument("--gamma-min", type=positive(float), default=defaults.gamma_min,
                   help="floor of the decoder standard deviations γ₁, γ₂ [%(default)s]")

    d = p.add_argument_group("data")
    d.add_argument("--dataset", default=defaults.dataset, choices=list(DATASETS),
                   help="; ".join(f"{k} = {v}" for k, v in DATASETS.items()) + " [%(default)s]")
    d.add_argument("--data-dir", type=Path, default=defaults.data_dir,
                   help="where mnist, fashion-mnist and cifar10 are (torchvision's layout), or the folder "
                        "holding hr/ and lr/ for --dataset folder [%(default)s]")
    d.add_argument("--download", action="store_true", default=defaults.download,
                   help="download mnist, fashion-mnist or cifar10 into --data-dir if missing (needs a network)")
    d.add_argument("--crop", type=positive(int), default=defaults.crop, metavar="P",
                   help="--dataset folder: train on random P×P patches of x and the matching (P/s)×(P/s) "
                        "patches of y (fixed patches for the test images); P a multiple of --scale")
    d.add_argument("--split", default=defaults.split, choices=list(SPLITS),
                   help="--dataset folder, how test images are held out: "
                        + "; ".join(f"{k} = {v}" for k, v in SPLITS.items()) + " [%(default)s]")
    d.add_argument("--units", default=defaults.units, choices=list(UNITS),
                   help="--dataset folder, how pixel values map to the model's: "
                        + "; ".join(f"{k} = {v}" for k, v in UNITS.items()) + " [%(default)s]")
    d.add_argument("--augment", action=argparse.BooleanOptionalAction, default=defaults.augment,
                   help="flip and rotate each training image or crop by a random symmetry of the square (x and "
                        "y alike) [on for --dataset folder when the training images or crops are square, else off]")
    d.add_argument("--test-images", type=positive(int), default=defaults.test_images,
                   help="evaluate on the first N test images (the digits have 359) [%(default)s]")
    d.add_argument("--scale", type=int, default=defaults.scale, choices=(2, 4),
                   help="downscaling factor s of y = d(x); with measured LR images (a folder with lr/) the "
                        "HR/LR size ratio [%(default)s]")
    d.add_argument("--downscale", default=defaults.downscale, choices=DOWNSCALE_MODES,
                   help="how d(x) downscales [%(default)s]")

    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=positive(int), default=defaults.epochs,
                   help="passes over the training set (with --crop, one crop per chip of the training part per "
                        f"pass) [200 for digits and folder, 20 for the torchvision sets, or as many as make "
                        f"{MIN_STEPS} steps if that is more]")
    t.add_argument("--batch-size", type=positive(int), default=defaults.batch_size,
                   help="images per step [%(default)s]")
    t.add_argument("--lr", type=positive(float), default=defaults.lr, help="Adam learning rate [%(default)s]")
    t.add_argument("--lr-schedule", default=defaults.lr_schedule, choices=list(LR_SCHEDULES),
                   help="; ".join(f"{k} = {v}" for k, v in LR_SCHEDULES.items()) + " [%(default)s]")
    t.add_argument("--nll-beta", type=float, default=defaults.nll_beta, metavar="BETA",
                   help="training only: weigh each pixel's log-density of x by σ^(2·BETA) (b^BETA for a "
                        "Laplace), normalized and not differentiated (β-NLL), so that a per-pixel scale does "
                        "not starve the fit of the mean where the detail is; 0 = the ELBO itself; the reported "
                        "ELBO is always the ELBO "
                        "[with --noise pixel and --objective pyro: 1 with --scale-network, else 0.5; else 0]")
    t.add_argument("--kl-warmup", type=int, default=defaults.kl_warmup, metavar="EPOCHS",
                   help="scale the KL terms from 0 to 1 over this many epochs (0 = no warm-up); the reported "
                        "ELBO is always the unscaled one [%(default)s]")
    t.add_argument("--amp", action="store_true", default=defaults.amp,
                   help="mixed precision: training steps under bfloat16 autocast (fast on recent GPUs, slow on "
                        "most CPUs); the explicit-ELBO cross-check still passes under it (tests/test_amp.py); "
                        "evaluation stays float32")
    t.add_argument("--clip-norm", type=positive(float), default=defaults.clip_norm, metavar="C",
                   help="clip the gradient's global L2 norm to C before each Adam step, as well as by "
                        "--spike-clip [no fixed limit]")
    t.add_argument("--spike-clip", type=positive(float, zero=True), default=defaults.spike_clip, metavar="K",
                   help="clip the gradient's global L2 norm to K times the median norm of the last 200 good "
                        "steps, so that one outlying step cannot set training back (history.csv counts the "
                        "clipped_steps); Adam ignores a constant scale of the gradients, so ordinary steps are "
                        "left alone; 0 = off [%(default)s]")
    t.add_argument("--max-bad-steps", type=positive(int), default=defaults.max_bad_steps, metavar="N",
                   help="a step with a non-finite loss or gradient is skipped and counted; stop (exit 3) after N "
                        "in a row, keeping the last good checkpoint [%(default)s]")
    t.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every, metavar="STEPS",
                   help="write checkpoint.pt every STEPS steps as well as after every epoch (0 = after every "
                        "epoch only) [%(default)s]")
    t.add_argument("--resume", type=Path, metavar="OUT_DIR", default=defaults.resume,
                   help="continue the run in OUT_DIR from its last checkpoint, with its configuration; only "
                        + ", ".join(f"--{key.replace('_', '-')}" for key in RESUME_MAY_CHANGE)
                        + " may be given anew (more --epochs extend a finished run, which is then evaluated again)")
    t.add_argument("--seed", type=int, default=defaults.seed,
                   help="seeds initialisation, training and evaluation [%(default)s]")
    t.add_argument("--device", default=defaults.device, choices=DEVICES,
                   help="auto = cuda when available, else cpu [%(default)s]")

    e = p.add_argument_group("evaluation and output")
    e.add_argument("--evaluate", type=Path, metavar="CHECKPOINT", default=defaults.evaluate,
                   help="evaluate the checkpoint.pt of a finished run on a test set instead of training: its "
                        "run's --dataset and --data-dir unless given (its configuration fixes the model; the flags "
                        "below still apply)")
    e.add_argument("--train-only", action="store_true", default=defaults.train_only,
                   help="train and write the checkpoint, then stop: no test-set evaluation, figures or summary "
                        "(for a benchmark that scores the model itself); python run.py --resume OUT evaluates "
                        "the finished run later")
    e.add_argument("--local-steps", type=int, default=defaults.local_steps,
                   help="SVI steps that fit a local guide's parameters for the test images, the model frozen, "
                        "before anything is evaluated [%(default)s]")
    e.add_argument("--eval-particles", type=positive(int), default=defaults.eval_particles,
                   help="particles per test image in each repeat of an ELBO estimate [%(default)s]")
    e.add_argument("--eval-repeats", type=positive(int), default=defaults.eval_repeats,
                   help="independent repeats of each ELBO estimate before its standard error is judged "
                        "(at least 2) [%(default)s]")
    e.add_argument("--elbo-se", type=positive(float), default=defaults.elbo_se, metavar="NATS",
                   help="the standard error per image each ELBO estimate repeats until it reaches, from "
                        "the first repeats' spread [%(default)s]")
    e.add_argument("--eval-max-particles", type=positive(int), default=defaults.eval_max_particles, metavar="N",
                   help="the most particles per test image an ELBO estimate takes in all, whatever its "
                        "standard error [%(default)s]")
    e.add_argument("--iw-samples", type=positive(int), default=defaults.iw_samples,
                   help="importance samples K per test image for the estimate of log p(x, y) [1000 for images "
                        f"of up to {IW_PIXEL_BUDGET // 1000} pixel values (the 8×8 digits), fewer for larger "
                        f"ones, as many as keep K × pixels ≤ {IW_PIXEL_BUDGET}, at least {IW_MIN_SAMPLES}]")
    e.add_argument("--sr-samples", type=positive(int), default=defaults.sr_samples,
                   help="samples of x per LR image for super-resolution [%(default)s]")
    e.add_argument("--sr-fit-steps", type=int, default=defaults.sr_fit_steps,
                   help="super-resolve from a Gaussian posterior per LR image fitted by this many SVI steps to "
                        "the model given y; 0 = the trained guide's q(·|y) "
                        "[300 for --model vae or --guide local, else 0]")
    e.add_argument("--sr-proposals", type=int, default=defaults.sr_proposals,
                   help="resample the SR draws, weighted by the model, from this many proposals per image; "
                        "0 = take the draws as they are [1000 for --model vae or --guide local, else 0]")
    e.add_argument("--rgb-bands", type=rgb_bands, default=defaults.rgb_bands, metavar="R,G,B",
                   help="the bands shown as red, green and blue in the figures, counted from 0 (for example "
                        "2,1,0 for Sentinel-2's B02, B03, B04, B08); display only [0,1,2 for 3 bands, else the mean "
                        "of the bands in grey]")
    e.add_argument("--out", type=Path, default=defaults.out,
                   help="output folder [runs/DATASET-MODEL-GUIDE-PRIOR]")
    return p


@dataclass(frozen=True)
class Request:
    """What a command line asks for: the configuration of its flags (defaults where not given), the
    settings it named (``given``, which a resumed run may refuse), and its mode: train, continue the
    run in the folder ``resume``, or evaluate the checkpoint ``evaluate``; ``train_only`` skips the
    evaluation that follows training."""

    config: RunConfig
    given: frozenset
    resume: Path | None = None
    evaluate: Path | None = None
    train_only: bool = False


def parse(argv=None, description: str | None = None) -> Request:
    """The ``Request`` of the command line ``argv`` (default: the process's); an error in the flags ends
    the process with status 2 and one line (argparse's)."""
    parser = build_parser(description)
    args = vars(parser.parse_args(argv))
    if args["train_only"] and args["evaluate"] is not None:
        parser.error("--train-only trains and --evaluate evaluates a trained run: give one of them")
    given = frozenset(vars(build_parser(description, named_only=True).parse_args(argv))) - set(MODES)
    settings = {key: args[key] for key in SETTINGS}
    settings.update(data_dir=str(settings["data_dir"]), out=None if settings["out"] is None else str(settings["out"]))
    return Request(RunConfig(**settings), given, args["resume"], args["evaluate"], args["train_only"])
