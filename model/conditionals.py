"""The three learned conditionals of the generative model (SPEC §2), one class each.

Each ``forward`` returns the distribution of its variable given its parents, with the image
event dims (C, H, W) declared, so that a ``pyro.sample`` statement can use it directly.
"""

import pyro.distributions as dist
import torch
from torch import nn

from model.distributions import DiscretizedNormal
from model.likelihood import discretized_gaussian_log_likelihood, gaussian_log_likelihood
from model.networks import Architecture, features


class IsotropicGaussianImage(nn.Module):
    """N(mean(h), γ²·I) over an image of shape ``image_shape``; γ > 0 a learned scalar (seed eq. 11).
    With ``levels`` set, the same Gaussian's mass on each pixel's bin of width 1/levels instead
    (the discretized likelihood of SPEC §4).

    γ = γ_min + exp(ρ): the floor γ_min (a buffer, saved with the model) keeps the likelihood
    bounded, so γ cannot collapse to 0; on the log scale Adam moves γ by relative steps.
    """

    def __init__(self, net: nn.Module, image_shape, gamma_init=0.1, gamma_min=1e-3, levels=None):
        """``net`` maps the parents to the logits of the mean (the mean is their sigmoid)."""
        super().__init__()
        if not 0 < gamma_min < gamma_init:
            raise ValueError(f"need 0 < gamma_min < gamma_init, got {gamma_min}, {gamma_init}")
        self.image_shape = tuple(image_shape)
        self.levels = levels
        self.net = net
        self.register_buffer("gamma_min", torch.tensor(float(gamma_min)))
        self.rho = nn.Parameter(torch.tensor(gamma_init - gamma_min).log())  # γ starts at γ_init

    @property
    def gamma(self) -> torch.Tensor:
        return self.gamma_min + self.rho.exp()

    def mean(self, *parents: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(*parents))

    def forward(self, *parents: torch.Tensor) -> dist.Independent:
        mean = self.mean(*parents)
        if self.levels is None:
            return dist.Normal(mean, self.gamma).to_event(3)
        return DiscretizedNormal(mean, self.gamma, self.levels).to_event(3)

    def log_likelihood(self, value: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """The explicit log-likelihood of each image given the decoder's mean: seed eq. 16 (corrected)
        for the Gaussian, the sum of log bin masses for the discretized one."""
        if self.levels is None:
            return gaussian_log_likelihood(value, mean, self.gamma)
        return discretized_gaussian_log_likelihood(value, mean, self.gamma, self.levels)


class PYGivenU(IsotropicGaussianImage):
    """p(y | u) = N(ŷ(u), γ₂²·I) over the k_y pixels of the LR image."""

    def __init__(self, latent_u, y_shape, arch: Architecture, **gamma):
        super().__init__(arch.image_decoder(latent_u, y_shape), y_shape, **gamma)


class PXGivenYZ(IsotropicGaussianImage):
    """p(x | y, z) = N(x̂(y, z), γ₁²·I) over the k_x pixels of the HR image."""

    def __init__(self, y_shape, latent_z, x_shape, scale, arch: Architecture, **gamma):
        super().__init__(arch.x_decoder(y_shape, latent_z, x_shape, scale), x_shape, **gamma)


class PZGivenYU(nn.Module):
    """p(z | y, u) = N(μ(y, u), diag σ²(y, u)): the learned conditional prior of the detail code."""

    def __init__(self, y_shape, latent_u, latent_z, arch: Architecture):
        super().__init__()
        self.y_features, width = arch.image_features(y_shape)
        self.gaussian = arch.gaussian(width + latent_u, latent_z)

    def forward(self, y, u):
        return self.gaussian(features(self.y_features(y), u))

    def loc_scale(self, y, u):
        """μ and σ without a distribution object (the plain-PyTorch baseline of ``bench``)."""
        return self.gaussian.loc_scale(features(self.y_features(y), u))
