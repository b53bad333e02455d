"""What is checked before anything is written: the flags' combinations, the device, the output folder
and the data. Each failure is a ``UsageError``: one line saying what is wrong and how to fix it."""

from pathlib import Path

from data.errors import DataError
from experiment.config import RunConfig
from guides import GUIDES, VAE_GUIDES, guide_kind


class UsageError(Exception):
    """Bad input: reported as one line and exit status 2, before anything is written."""


def check(config: RunConfig) -> None:
    """The combinations of settings that cannot work, before any data are read."""
    c = config
    if c.model == "vae" and c.guide not in VAE_GUIDES:
        raise UsageError(f"--guide {c.guide} works with --model srvae only; the VAE baseline takes "
                         f"{', '.join(VAE_GUIDES)}")
    if c.guide == "local" and c.local_steps < 1:
        raise UsageError(f"--guide local needs --local-steps ≥ 1 to fit the test images before evaluating, "
                         f"got {c.local_steps}")
    if c.guide == "local" and c.sr_fit_steps == 0:
        raise UsageError("--guide local has no q(u | y) for super-resolution: keep --sr-fit-steps above 0")
    if c.eval_repeats < 2:
        raise UsageError(f"--eval-repeats must be at least 2 for a standard error, got {c.eval_repeats}")
    for flag in ("sr_proposals", "sr_fit_steps", "kl_warmup", "refine_steps", "checkpoint_every"):
        if getattr(c, flag) is not None and getattr(c, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be 0 or more, got {getattr(c, flag)}")
    if c.model == "vae" and c.noise in ("band", "pixel"):
        raise UsageError(f"--noise {c.noise} is a scale of the SRVAE's p(x | y, z); the VAE baseline has one γ: "
                         "drop --noise, or use --model srvae")
    if c.model == "vae" and c.likelihood in ("laplace", "gennorm"):
        raise UsageError(f"--likelihood {c.likelihood} is the SRVAE's; the VAE baseline conditions on y through a "
                         "Gaussian's linear image d(x): use --likelihood gaussian, or --model srvae")
    if c.nll_beta is not None and not 0 <= c.nll_beta <= 1:
        raise UsageError(f"--nll-beta must be between 0 (the ELBO) and 1 (the squared error's weighting), got "
                         f"{c.nll_beta}")
    if c.nll_beta and c.objective != "pyro":
        raise UsageError(f"--nll-beta weighs the pixels through Pyro's Trace_ELBO: use --objective pyro, not "
                         f"{c.objective}")
    if c.objective == "pyro-jit" and (not guide_kind(c.guide, c.model).compiles or c.kl_warmup):
        compiling = " or ".join(name for name, kind in GUIDES.items() if kind.compiles)
        raise UsageError(f"--objective pyro-jit compiles the ELBO once: it takes --guide {compiling} and no "
                         "--kl-warmup; use --objective pyro")
    for flag, value, default in (("crop", c.crop, None), ("split", c.split, "auto"), ("augment", c.augment, False),
                                 ("units", c.units, "auto")):
        if value != default and value is not None and c.dataset != "folder":
            raise UsageError(f"--{flag} works with --dataset folder only (the {c.dataset} images are used whole)")
    if c.download and c.dataset in ("digits", "folder"):
        raise UsageError(f"--download fetches mnist, fashion-mnist or cifar10; {c.dataset} has nothing to "
                         "download")


def check_distributed(config: RunConfig, ranks, evaluating: bool = False) -> None:
    """What data-parallel training supports."""
    if ranks.world_size == 1:
        return
    if evaluating:
        raise UsageError("--evaluate runs in one process: python run.py --evaluate …, without torchrun")
    if not guide_kind(config.guide, config.model).data_parallel:
        raise UsageError(f"--guide {config.guide} under torchrun: its per-image parameters (local) or inner "
                         "optimisation (semi-amortized) would differ between processes; use --guide amortized, "
                         "or train in one process")
    if config.objective != "pyro":
        raise UsageError(f"--objective {config.objective} under torchrun: data-parallel training wraps Pyro's "
                         "Trace_ELBO in DistributedDataParallel; use --objective pyro")


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


def load_data(config: RunConfig, normalization: dict | None = None):
    """The data set of ``config`` with at most ``test_images`` test images, on the discrete grid for the
    discretized likelihood, normalized with a run's saved map when given; a missing or bad file is a
    UsageError naming it."""
    from data import load_dataset

    try:
        data = load_dataset(config.dataset, config.data_dir, config.download, config.scale, config.crop, config.split,
                            bool(config.augment), discrete=config.likelihood == "discretized",
                            normalization=normalization, units=config.units)
    except DataError as error:
        raise UsageError(str(error)) from None
    return data.test_subset(config.test_images)


def check_bands(config: RunConfig, data) -> None:
    """--rgb-bands names bands the images have."""
    bands = data.image_shape[0]
    if config.rgb_bands is not None and max(config.rgb_bands) >= bands:
        raise UsageError(f"--rgb-bands {','.join(map(str, config.rgb_bands))}: the {config.dataset} images have "
                         f"{bands} band(s), counted from 0 to {bands - 1}")


def check_data(config: RunConfig, data) -> None:
    """The checks of a training run that need the data."""
    check_bands(config, data)
    if config.augment and data.image_shape[1] != data.image_shape[2]:
        raise UsageError(f"--augment rotates the training images by 90°, which needs them square, but they are "
                         f"{data.image_shape[1]}×{data.image_shape[2]}: give --crop P, or --no-augment")
    if config.likelihood == "discretized" and data.levels is None:
        kind = "continuous" if not data.integer else "integer, with bands of different ranges"
        raise UsageError(f"--likelihood discretized needs pixels on one grid of levels; the {config.dataset} "
                         f"pixels are {kind}: use --likelihood gaussian")
    if config.model == "vae" and data.paired:
        raise UsageError(f"--model vae assumes y = d(x), but {config.data_dir}/lr/ holds measured LR images: use "
                         "--model srvae, or move lr/ away to train on y = d(x)")


def place(data, device: str):
    """Data on the device once when they fit in a quarter of its free memory; else the training
    images stay in host memory and come through a DataLoader (the test images always move)."""
    import torch

    if device == "cpu":
        return data
    stored = sum(t.nbytes for t in (data.train_values, data.train_lr) if t is not None)
    return data.to(device, train=stored <= torch.cuda.mem_get_info()[0] / 4)
