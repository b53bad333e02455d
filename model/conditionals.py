"""The three learned conditionals of the generative model (SPEC §2), one class each.

Each ``forward`` returns the distribution of its variable given its parents, with the image
event dims (C, H, W) declared, so that a ``pyro.sample`` statement can use it directly.
"""

import pyro.distributions as dist
import torch
from torch import nn

from model.distributions import DiscretizedNormal, GeneralizedNormal
from model.likelihood import (
    discretized_gaussian_log_likelihood,
    gaussian_log_likelihood,
    generalized_normal_log_likelihood,
    laplace_log_likelihood,
)
from model.networks import Architecture, features

NOISE = {"scalar": "one learned γ for every pixel (the seed's model)",
         "band": "one learned γ per band (the seed's model band by band)",
         "pixel": "a per-pixel scale σ(parents) from a second output of the decoder (heteroscedastic)"}
FAMILIES = ("gaussian", "laplace", "gennorm")  # the continuous decoders' distribution of each pixel
POWER_RANGE = (1.0, 4.0)  # the generalized normal's shape p: the Laplace's 1 to tails lighter than the Gaussian's
POWER_GAIN = 10.0  # p's logit is stored divided by this: Adam's steps, of the size of the learning rate, move it faster


class ImageDecoder(nn.Module):
    """N(mean(h), diag σ²) over an image of shape ``image_shape`` (SPEC §2), with σ after ``noise``
    (``NOISE``): one learned γ (seed eq. 11), one γ per band, or a per-pixel σ from the decoder.
    With ``levels`` set, the same Gaussian's mass on each pixel's bin of width 1/levels instead
    (the discretized likelihood of SPEC §4). With ``family`` "laplace", each pixel Laplace(mean, σ)
    instead of the Gaussian: σ is then its scale b (its std √2·b). With "gennorm", each pixel a
    generalized normal of std σ and shape p, one p learned per band in ``POWER_RANGE`` and starting
    at the Gaussian's 2: the data choose between Laplace-like errors, mostly small and sometimes
    large, and Gaussian or lighter ones, where a fixed shape makes some interval levels too wide
    and others too narrow.

    σ = γ_min + exp(ρ + r): ρ learned (per band, or one), r the decoder's log-scale output (0
    unless ``noise`` is "pixel"). The floor γ_min (a buffer, saved with the model) keeps the
    likelihood bounded, so σ cannot collapse to 0; on the log scale Adam moves σ by relative steps.
    """

    def __init__(self, net: nn.Module, image_shape, gamma_init=0.1, gamma_min=1e-3, levels=None, noise="scalar",
                 link="sigmoid", family="gaussian"):
        """``net`` maps the parents to the mean through ``link``: the logits of the mean (the mean is
        their sigmoid), or the mean itself ("identity"); followed, for a per-pixel σ, by as many
        channels of raw log-scales."""
        super().__init__()
        if not 0 < gamma_min < gamma_init:
            raise ValueError(f"need 0 < gamma_min < gamma_init, got {gamma_min}, {gamma_init}")
        if noise not in NOISE:
            raise ValueError(f"unknown noise model {noise!r}; choose from {', '.join(NOISE)}")
        if family not in FAMILIES or (family != "gaussian" and levels is not None):
            raise ValueError(f"unknown decoder family {family!r} (with levels {levels}); choose from "
                             f"{', '.join(FAMILIES)}, only gaussian when discretized")
        self.image_shape = tuple(image_shape)
        self.levels, self.noise, self.family = levels, noise, family
        self.link = torch.sigmoid if link == "sigmoid" else (lambda mean: mean)
        self.net = net
        self.register_buffer("gamma_min", torch.tensor(float(gamma_min)))
        shape = () if noise == "scalar" else (self.image_shape[0], 1, 1)
        self.rho = nn.Parameter(torch.full(shape, gamma_init - gamma_min).log())  # σ starts at γ_init
        if family == "gennorm":  # p = low + (high − low)·sigmoid(gain·θ), per band, starting at 2
            low, high = POWER_RANGE
            start = torch.logit(torch.tensor((2 - low) / (high - low))).item() / POWER_GAIN
            self.power_logit = nn.Parameter(torch.full((self.image_shape[0], 1, 1), start))

    @property
    def power(self) -> torch.Tensor:
        """The generalized normal's shape p per band (shape (C, 1, 1)); "gennorm" only."""
        low, high = POWER_RANGE
        return low + (high - low) * torch.sigmoid(POWER_GAIN * self.power_logit)

    @property
    def gamma(self) -> torch.Tensor:
        """γ: the scale of every pixel (scalar or per band); for a per-pixel σ, its value at r = 0."""
        return self.gamma_min + self.rho.exp()

    def mean_and_scale(self, *parents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(*parents)
        if self.noise != "pixel":
            return self.link(out), self.gamma
        logits, raw = out.chunk(2, dim=-3)
        return self.link(logits), self.gamma_min + (self.rho + raw).exp()

    def mean(self, *parents: torch.Tensor) -> torch.Tensor:
        return self.mean_and_scale(*parents)[0]

    def forward(self, *parents: torch.Tensor) -> dist.Independent:
        mean, scale = self.mean_and_scale(*parents)
        if self.family == "laplace":
            return dist.Laplace(mean, scale).to_event(3)
        if self.family == "gennorm":
            return GeneralizedNormal(mean, scale, self.power).to_event(3)
        if self.levels is None:
            return dist.Normal(mean, scale).to_event(3)
        return DiscretizedNormal(mean, scale, self.levels).to_event(3)

    def log_likelihood(self, value: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """The explicit log-likelihood of each image given the decoder's mean (and, for a per-pixel σ, its
        ``scale``; else γ): seed eq. 16 (corrected) for one γ, its diagonal form for a γ per band or per
        pixel (SPEC §2), the sum of log bin masses for the discretized one, the Laplace's or the
        generalized normal's for those."""
        if self.noise != "pixel":
            scale = self.gamma
        if self.family == "laplace":
            return laplace_log_likelihood(value, mean, scale)
        if self.family == "gennorm":
            return generalized_normal_log_likelihood(value, mean, scale, self.power)
        if self.levels is None:
            return gaussian_log_likelihood(value, mean, scale)
        return discretized_gaussian_log_likelihood(value, mean, scale, self.levels)


class PYGivenU(ImageDecoder):
    """p(y | u) = N(ŷ(u), γ₂²·I) over the k_y pixels of the LR image."""

    def __init__(self, latent_u, y_shape, arch: Architecture, **gamma):
        super().__init__(arch.image_decoder(latent_u, y_shape), y_shape, **gamma)


class PXGivenYZ(ImageDecoder):
    """p(x | y, z) = N(x̂(y, z), γ₁²·I) over the k_x pixels of the HR image, or with γ₁ per band or
    σ₁(y, z) per pixel (``noise``), or Laplace or generalized-normal pixels (``family``). The
    convolutional x̂ is bicubic(y) plus what the network adds (no sigmoid, as the residual CNNs of
    super-resolution: the same gradient for dark pixels as for bright ones); the MLP's is the sigmoid
    of its output added to the logit of bicubic(y)."""

    def __init__(self, y_shape, latent_z, x_shape, scale, arch: Architecture, noise="scalar", **gamma):
        heads = 2 if noise == "pixel" else 1
        super().__init__(arch.x_decoder(y_shape, latent_z, x_shape, scale, heads), x_shape, noise=noise,
                         link="identity" if arch.kind == "conv" else "sigmoid", **gamma)


PRIOR_SCALE_MIN = 0.1  # the floor of p(z | y, u)'s scales


class PZGivenYU(nn.Module):
    """p(z | y, u) = N(μ(y, u), diag σ²(y, u)): the learned conditional prior of the detail code.

    σ ≥ ``PRIOR_SCALE_MIN``. The ELBO does not fix z's scale: z → a·z + b in q(z | x), p(z | y, u)
    and the decoder of x leaves it unchanged. Where z carries little (collapsed units, q ≈ p), both
    scales can drift down together at no cost, and KL_z = log(σ_p/σ_q) + (σ_q² + (μ_q − μ_p)²)/(2σ_p²)
    − ½ then answers a mean mismatch δ with δ²/(2σ_p²): at the latent floor 10⁻⁴ a mismatch of 0.1
    costs 5·10⁵ nats, a finite loss orders of magnitude off that throws training out of its basin.
    The floor bounds that sensitivity at δ²/(2·0.1²) and costs the model little (z rescaled by a
    constant is the same model), while q(z | x) may still be as precise as it likes."""

    def __init__(self, y_shape, latent_u, latent_z, arch: Architecture):
        super().__init__()
        self.y_features, width = arch.image_features(y_shape)
        self.gaussian = arch.gaussian(width + latent_u, latent_z, min_scale=PRIOR_SCALE_MIN)

    def forward(self, y, u):
        return self.gaussian(features(self.y_features(y), u))

    def loc_scale(self, y, u):
        """μ and σ without a distribution object (the plain-PyTorch baseline of ``bench``)."""
        return self.gaussian.loc_scale(features(self.y_features(y), u))
