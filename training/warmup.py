"""What training changes and evaluation does not: the KL warm-up (the KL terms scaled by β from 0 to 1
over the first epochs), the learning rate's schedule, and the β-NLL weights of the pixels of x."""

import math
from typing import ClassVar

from pyro.distributions import TorchDistribution
from pyro.poutine.messenger import Messenger
from torch.distributions import Laplace

from model.distributions import GeneralizedNormal

LATENT_SITES = ("u", "z")  # their log p − log q make up KL_u and KL_z; y and x are reconstructions


class ScaleSites(Messenger):
    """Like ``poutine.scale``, but only for the sample sites named in ``sites``: multiplies their
    log-densities by ``scale``. Applied to model and guide alike, it scales log p(u) − log q(u|y)
    and log p(z|y,u) − log q(z|x), i.e. the KL terms, and nothing else."""

    def __init__(self, scale: float, sites=LATENT_SITES):
        super().__init__()
        self.scale, self.sites = scale, tuple(sites)

    def _process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.sites:
            msg["scale"] = self.scale * msg["scale"]


def kl_scale(epoch: int, fraction: float, warmup_epochs: int) -> float:
    """β at ``fraction`` ∈ (0, 1] of epoch ``epoch`` (counted from 1): linear from 0 to 1 over
    ``warmup_epochs`` epochs, then 1."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch - 1 + fraction) / warmup_epochs)


LR_SCHEDULES = {"cosine": "from --lr down to a hundredth of it along half a cosine over the run's steps (more "
                          "--epochs for a finished run re-plan it)",
                "constant": "--lr throughout"}


def lr_factor(schedule: str, done: int, total: int) -> float:
    """The learning rate's multiplier after ``done`` of ``total`` steps: 1 throughout ("constant"), or
    0.01 + 0.99·½(1 + cos(π·done/total)) ("cosine": large steps early, small ones at the end, where
    they refine instead of kicking the model out of its minimum)."""
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose from {', '.join(LR_SCHEDULES)}")
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(done / max(total, 1), 1.0)))


class PixelWeighted(TorchDistribution):
    """A decoder of x, ``fn`` (image event dims, a Normal, discretized, Laplace or generalized normal
    base with a per-pixel ``scale``), whose log-density weighs pixel i by wᵢ = σᵢ^{pβ} / mean_j σⱼ^{pβ},
    not differentiated, the mean over every pixel of the batch: the β-NLL of Seitzer et al. (2022).
    The weights average 1, so the term keeps its size against the KLs. p is the power of σ in the
    log-density's gradient in the mean: 2 for the Gaussian's (xᵢ − x̂ᵢ)/σᵢ², where β = 1 gives the
    squared error's gradient over the whole batch, (xᵢ − x̂ᵢ)/mean σ²; 1 for the Laplace's
    sign(xᵢ − x̂ᵢ)/bᵢ, where β = 1 gives the absolute error's, sign(xᵢ − x̂ᵢ)/mean b; the generalized
    normal's own p for its p·|xᵢ − x̂ᵢ|^{p−1}·sign(xᵢ − x̂ᵢ)/αᵢ^p (its α for σ), where β = 1 gives the
    gradient of Σ|xᵢ − x̂ᵢ|^p. The ELBO's (β = 0) gives up on the pixels it calls uncertain; the σ that
    maximizes it is the ELBO's. A training surrogate, like the KL warm-up: what is reported is the
    ELBO itself."""

    arg_constraints: ClassVar[dict] = {}

    def __init__(self, fn, beta: float):
        self.fn, self.beta = fn, beta
        super().__init__(fn.batch_shape, fn.event_shape, validate_args=False)

    @property
    def support(self):
        return self.fn.support

    def expand(self, batch_shape, _instance=None):
        return PixelWeighted(self.fn.expand(batch_shape), self.beta)

    def sample(self, sample_shape=()):
        return self.fn.sample(sample_shape)

    def log_prob(self, value):
        base = self.fn.base_dist
        per_pixel = base.log_prob(value)
        if isinstance(base, GeneralizedNormal):
            scale, power = base.alpha.detach(), base.power.detach()
        else:
            scale, power = base.scale.detach(), 1 if isinstance(base, Laplace) else 2
        weights = scale.pow(power * self.beta).expand_as(per_pixel)
        weights = weights / weights.mean()
        return (weights * per_pixel).flatten(-3).sum(-1)


class WeightPixels(Messenger):
    """At the sample site ``x``, the model's decoder replaced by its ``PixelWeighted`` form."""

    def __init__(self, beta: float, site: str = "x"):
        super().__init__()
        self.beta, self.site = beta, site

    def _process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] == self.site:
            msg["fn"] = PixelWeighted(msg["fn"], self.beta)
