"""The plain VAE baseline: p(x, z) = p(x | z) · p(z), in the same framework as the SRVAE."""

import math

import pyro
import pyro.distributions as dist
from torch import nn

from data.downscale import downscale, row_norms
from model.conditionals import ImageDecoder
from model.networks import MLP, Architecture
from model.srvae import data_plate, lr_shape


class PXGivenZ(ImageDecoder):
    """p(x | z) = N(x̂(z), γ²·I) over the k_x pixels (or its discretized form)."""

    def __init__(self, latent, x_shape, arch: Architecture, **gamma):
        super().__init__(arch.image_decoder(latent, x_shape), x_shape, **gamma)


class VAE(nn.Module):
    """p(x, z) = p(x | z) · p(z), with the SRVAE's priors and decoders.

    Given only an LR image y, the model can still condition on it: d is linear, so under
    p(x | z) the image d(x) is exactly N(d(x̂(z)), γ²·diag(AAᵀ)), A the matrix of d. That is
    the likelihood p(y | z) of the ``y`` site, present only when y is observed (super-resolution).
    """

    models_y = False  # x alone: y appears only observed, for super-resolution
    k_y = 0  # LR pixel values in its density: bits/dim count k_x dimensions

    def __init__(self, x_shape, prior: nn.Module, latent=12, scale=2, downscale_mode="area", arch=MLP,
                 gamma_init=0.1, gamma_min=1e-3, levels=None):
        super().__init__()
        self.x_shape = tuple(x_shape)
        self.scale, self.downscale_mode, self.levels = scale, downscale_mode, levels
        self.y_shape = lr_shape(self.x_shape, scale)
        self.p_z = prior
        self.p_x_given_z = PXGivenZ(latent, self.x_shape, arch, gamma_init=gamma_init, gamma_min=gamma_min,
                                    levels=levels)
        self.register_buffer("d_row_norm", row_norms(self.x_shape, scale, downscale_mode))

    @property
    def k_x(self) -> int:
        return math.prod(self.x_shape)

    def gammas(self) -> dict:
        return {"gamma_x": self.p_x_given_z.gamma.item()}

    def p_y_given_z(self, z):
        """The law of y = d(x) under p(x | z): N(d(x̂(z)), γ²·diag(AAᵀ)) (the Gaussian decoder's)."""
        x_hat = self.p_x_given_z.mean(z)
        return dist.Normal(downscale(x_hat, self.scale, self.downscale_mode),
                           self.p_x_given_z.gamma * self.d_row_norm).to_event(3)

    def forward(self, *args, **kwargs):
        """The model function (``model``): the module is what ``Trace_ELBO()(model, guide)`` takes."""
        return self.model(*args, **kwargs)

    def model(self, x=None, y=None, num_images=None, index=None):
        """Sample z then x inside ``pyro.plate("data")``; with y given, y is observed through p(y | z)."""
        with data_plate(x, y, num_images, self.d_row_norm.device):
            z = pyro.sample("z", self.p_z())  # the prior p(z): edit this line to swap it
            if y is not None:
                pyro.sample("y", self.p_y_given_z(z), obs=y)
            return pyro.sample("x", self.p_x_given_z(z), obs=x)
