"""The run configuration: one typed, versioned record of every setting of a run, its defaults, and
the values derived from the data (SPEC §7). It is what ``config.json`` and the checkpoint hold;
``RunConfig.from_dict`` reads those of older versions (``migrate``)."""

import math
from dataclasses import asdict, dataclass, fields, replace

from model.networks import Architecture
from training.progress import SPIKE_CLIP

CONFIG_VERSION = 6  # 1: the untyped dictionaries written before the version was recorded; 2: no scale_network;
# 3: no spike_clip; 4: no units (folders were mapped by their training range); 5: no network_units
NETWORK_QUANTILES = (0.005, 0.995)  # the networks see these quantiles of a band's training pixels at 0 and 1
MIN_STEPS = 4000  # the default training budget's floor, in Adam steps
IW_PIXEL_BUDGET = 64_000  # importance draws × pixel values per test image, by default
IW_MIN_SAMPLES = 100
BEFORE_THESE_FLAGS = {"lr_schedule": "constant", "noise": "scalar", "augment": False, "split": "auto",
                      "nll_beta": 0.0, "feature_norm": False, "arch": "mlp", "model": "srvae", "channels": 32,
                      "blocks": 1, "likelihood": "gaussian"}  # what runs written before each flag used
EVALUATION_KEYS = ("eval_particles", "eval_repeats", "elbo_se", "eval_max_particles", "iw_samples", "sr_samples",
                   "sr_proposals", "sr_fit_steps", "seed", "mixture_kl", "local_steps",
                   "rgb_bands")  # what --evaluate takes from its command line
RESUME_MAY_CHANGE = ("epochs", "lr", "clip_norm", "spike_clip", "max_bad_steps", "checkpoint_every", "device",
                     "data_dir", "test_images",
                     *(key for key in EVALUATION_KEYS if key != "seed"))  # all else is the run's


class ConfigError(ValueError):
    """A saved configuration this version cannot read."""


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run. ``None`` (and "auto") mean "derived": ``resolved`` fills them from the
    data, the device and the other settings, and a resolved configuration is what a run records.
    The command line's flags are these fields (``experiment.cli``), with these defaults."""

    # model and inference
    model: str = "srvae"
    guide: str = "amortized"
    refine_steps: int = 5
    refine_lr: float = 0.01
    prior: str = "normal"
    components: int = 10
    mixture_kl: str = "tight"
    likelihood: str = "auto"
    objective: str = "pyro"
    particles: int = 1
    latent_u: int = 4
    latent_z: int = 8
    arch: str = "auto"
    hidden: int = Architecture.hidden  # the networks' sizes: their own defaults
    depth: int = Architecture.depth
    channels: int = Architecture.channels
    blocks: int = Architecture.blocks
    feature_norm: bool = Architecture.feature_norm
    scale_network: bool = Architecture.scale_network
    noise: str = "auto"
    gamma_min: float = 1e-3
    gamma_init: float = 0.1
    # data
    dataset: str = "digits"
    data_dir: str = "data"
    download: bool = False
    crop: int | None = None
    split: str = "auto"
    units: str = "auto"
    augment: bool | None = None
    test_images: int = 1000
    scale: int = 2
    downscale: str = "area"
    # training
    epochs: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    nll_beta: float | None = None
    kl_warmup: int = 0
    amp: bool = False
    clip_norm: float | None = None
    spike_clip: float = SPIKE_CLIP
    max_bad_steps: int = 10
    checkpoint_every: int = 0
    seed: int = 0
    device: str = "auto"
    # evaluation and output
    local_steps: int = 500
    eval_particles: int = 16
    eval_repeats: int = 4
    elbo_se: float = 0.05
    eval_max_particles: int = 256
    iw_samples: int | None = None
    sr_samples: int = 100
    sr_fit_steps: int | None = None
    sr_proposals: int | None = None
    rgb_bands: list | None = None
    out: str | None = None
    evaluated_checkpoint: str | None = None
    # derived from the data and the launch
    image_shape: list | None = None
    levels: float | None = None
    normalization: dict | None = None
    network_units: dict | str | None = None
    paired: bool = False
    train_images: int | None = None
    world_size: int = 1
    # what produced it
    versions: dict | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> "RunConfig":
        """The configuration a run saved (``config.json`` or its checkpoint), of this version or an older one."""
        saved = migrate(saved)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(saved) - names)
        if unknown:
            raise ConfigError(f"unknown settings {', '.join(unknown)}: written by a newer version of SRVAE-Pyro")
        return cls(**saved)

    def but(self, **changes) -> "RunConfig":
        """The same configuration with ``changes``."""
        return replace(self, **changes)

    def resolved(self, data, device: str, out, world_size: int = 1, provenance: dict | None = None) -> "RunConfig":
        """The derived settings filled for training on ``data`` (``data.ImageData``) on ``device``, with
        ``world_size`` processes, writing into ``out``."""
        arch = self.architecture_for(data.image_shape)
        noise = self.noise_for(arch)
        likelihood = self.likelihood_for(noise)
        nll_beta = self.nll_beta_for(noise) if self.nll_beta is None else self.nll_beta
        augment = self.augmentation(data.image_shape)
        epochs = self.epochs or default_epochs(self.dataset, len(data.train_values), self.batch_size, world_size)
        units = data.units if self.dataset == "folder" else self.units
        network_units = self.network_units or network_units_for(data)
        return replace(self, arch=arch, noise=noise, likelihood=likelihood, nll_beta=nll_beta, augment=augment,
                       units=units, network_units=network_units,
                       epochs=epochs, device=device, out=str(out), world_size=world_size,
                       image_shape=list(data.image_shape), levels=data.levels, normalization=data.normalization,
                       paired=data.paired, train_images=len(data.train_values), test_images=len(data.test_values),
                       **(provenance or {})).with_evaluation_defaults()

    def augmentation(self, image_shape) -> bool:
        """``augment``, by default on for folder data whose training images (``image_shape``, crops with
        ``--crop``) are square: their flips and 90° rotations are as likely as the images (satellite
        scenes and tiles), and without them a folder of a few hundred tiles is learnt by heart."""
        if self.augment is not None:
            return self.augment
        return self.dataset == "folder" and image_shape[1] == image_shape[2]

    def architecture_for(self, image_shape) -> str:
        """``arch``, or for "auto" conv for images of 28×28 and larger, mlp below."""
        from model.networks import default_architecture

        return default_architecture(image_shape) if self.arch == "auto" else self.arch

    def noise_for(self, arch: str) -> str:
        """``noise``, or for "auto" a per-pixel σ for the SRVAE with conv networks, one γ otherwise."""
        if self.noise != "auto":
            return self.noise
        return "pixel" if arch == "conv" and self.model == "srvae" else "scalar"

    def likelihood_for(self, noise: str) -> str:
        """``likelihood``, or for "auto" generalized normals of learned shape where p(x | y, z) has a
        per-pixel scale (real-size images, whose errors are mostly small and sometimes large: a Gaussian
        with the right 90 % interval has too wide a 50 % one), and the seed's Gaussians otherwise."""
        if self.likelihood != "auto":
            return self.likelihood
        return "gennorm" if noise == "pixel" and self.model == "srvae" else "gaussian"

    def nll_beta_for(self, noise: str) -> float:
        """β of the β-NLL weights by default: with a per-pixel scale and Pyro's objective, 1 (the mean fitted
        by the squared error) when the scales have a network of their own, 0.5 when they share the
        mean's; else 0 (the ELBO itself)."""
        if noise != "pixel" or self.objective != "pyro":
            return 0.0
        return 1.0 if self.scale_network else 0.5

    def with_evaluation_defaults(self) -> "RunConfig":
        """The evaluation's settings that depend on the run: K by the image size (``default_iw_samples``);
        and SR needs a posterior given y alone: a guide that has none (the VAE's encoder, a local guide)
        gets a posterior fitted to y and its draws resampled."""
        from guides import guide_kind

        fitted = not guide_kind(self.guide, self.model).super_resolves_from_y
        return replace(self, iw_samples=self.iw_samples or default_iw_samples(self.image_shape),
                       sr_proposals=(1000 if fitted else 0) if self.sr_proposals is None else self.sr_proposals,
                       sr_fit_steps=(300 if fitted else 0) if self.sr_fit_steps is None else self.sr_fit_steps)


def migrate(saved: dict) -> dict:
    """A saved configuration in this version's terms. Version 1 (no ``version``) lacked the settings
    added since (``BEFORE_THESE_FLAGS``: what those runs used) and wrote ``data_dir`` and ``out`` as
    they were given."""
    saved = dict(saved)
    version = saved.pop("version", 1)
    if version > CONFIG_VERSION:
        raise ConfigError(f"configuration version {version}: written by a newer version of SRVAE-Pyro, which "
                          f"reads version {CONFIG_VERSION}")
    if version == 1:
        saved = {**BEFORE_THESE_FLAGS, **saved}
    if version <= 2:
        saved = {**saved, "scale_network": False}  # the log-scales were a second head of the mean's network
    if version <= 3:
        saved = {**saved, "spike_clip": 0.0}  # no step was clipped unless --clip-norm said so
    if version <= 4 and saved.get("dataset") == "folder":
        saved = {**saved, "units": "range"}  # folders were mapped by their training pixels' range
    if version <= 5:
        saved = {**saved, "network_units": "model"}  # the networks saw the model's own units
    return {**saved, "version": CONFIG_VERSION}


def network_units_for(data) -> dict | str:
    """The units the conv networks see images in (``model.conv.NetworkUnits``): for fixed units (reflectance),
    per band, c and g that put the ``NETWORK_QUANTILES`` of the training pixels at 0 and 1; "model" (the model's
    own) for units already fitted to the training pixels' range, which span [0, 1]."""
    if data.units == "range":
        return "model"
    low, high = data.band_quantiles(*NETWORK_QUANTILES)
    return {"low": low, "gain": [1.0 / max(top - bottom, 1e-6) for bottom, top in zip(low, high, strict=True)]}


def default_epochs(dataset: str, images: int, batch_size: int, processes: int = 1) -> int:
    """200 epochs for the digits and folder data, 20 for the torchvision sets, and more where that
    would be fewer than ``MIN_STEPS`` steps (a small data set, or few crops per epoch)."""
    steps_per_epoch = math.ceil(images / (batch_size * processes))
    return max(200 if dataset in ("digits", "folder") else 20, math.ceil(MIN_STEPS / steps_per_epoch))


def default_iw_samples(image_shape) -> int:
    """K for the importance-weighted estimate: 1000 for the 8×8 digits, and for larger images as many as
    keep the draws × pixel values per test image within ``IW_PIXEL_BUDGET`` (at least ``IW_MIN_SAMPLES``),
    so that its cost per test image does not grow with the image."""
    return min(1000, max(IW_MIN_SAMPLES, IW_PIXEL_BUDGET // math.prod(image_shape)))


__all__ = ["CONFIG_VERSION", "ConfigError", "RunConfig", "default_epochs", "default_iw_samples", "migrate"]
