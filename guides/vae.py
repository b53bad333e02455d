"""The amortized guide of the VAE baseline: q(z | x) from an encoder of x."""

import pyro

from data.downscale import upsample
from guides.amortized import DownscalingGuide, ImageEncoder
from model.networks import MLP
from model.srvae import data_plate


class QZGivenXVAE(ImageEncoder):
    """q(z | x) = N(μ(x), diag σ²(x))."""


class AmortizedVAEGuide(DownscalingGuide):
    """q(z | x). Given an LR image y alone, the same encoder applied to bicubic upsampling of y
    proposes z; super-resolution reweights those proposals by the model (``evaluation.superres``)."""

    amortized, data_parallel, compiles = True, True, True
    super_resolves_from_y = False  # its proposals from bicubic(y) are resampled by the model

    def __init__(self, x_shape, latent=12, scale=2, downscale_mode="area", arch=MLP, levels=None):
        super().__init__(scale, downscale_mode, levels)
        self.q_z_given_x = QZGivenXVAE(x_shape, latent, arch)

    @property
    def prior_encoder(self):
        return self.q_z_given_x

    def guide(self, x=None, y=None, num_images=None, index=None):
        """Same signature as ``VAE.model``."""
        with data_plate(x, y, num_images):
            seen = x if x is not None else upsample(y, self.scale, "bicubic")
            pyro.sample("z", self.q_z_given_x(seen))
