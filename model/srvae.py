"""The super-resolution VAE as a Pyro model (SPEC §2, seed eq. 2)."""

import math

import pyro
from torch import nn

from model.conditionals import PXGivenYZ, PYGivenU, PZGivenYU
from model.networks import MLP


def lr_shape(x_shape, scale: int) -> tuple:
    """Shape of y = d(x): (C, H/s, W/s) (SPEC §1)."""
    c, h, w = x_shape
    if h % scale or w % scale:
        raise ValueError(f"image size {h}×{w} is not divisible by the scale {scale}")
    return (c, h // scale, w // scale)


class SRVAE(nn.Module):
    """p(x, y, z, u) = p(x | y, z) · p(z | y, u) · p(y | u) · p(u).

    ``p_u`` is a prior module (``model.priors``); the three conditionals are learned, with networks
    built by ``arch`` (MLP or convolutional). ``levels`` switches both image decoders to the
    discretized likelihood on that many pixel levels, ``family`` "laplace" to Laplace pixels,
    "gennorm" to generalized normals of learned shape.
    ``noise`` is the scale of p(x | y, z): one γ₁, one per band, or a per-pixel σ₁(y, z)
    (``model.conditionals.NOISE``).
    """

    models_y = True  # its density is of (x, y); the VAE baseline's of x alone

    def __init__(self, x_shape, prior: nn.Module, latent_u=4, latent_z=8, scale=2, arch=MLP,
                 gamma_init=0.1, gamma_min=1e-3, levels=None, noise="scalar", family="gaussian"):
        super().__init__()
        self.x_shape = tuple(x_shape)
        self.y_shape = lr_shape(self.x_shape, scale)
        self.levels = levels
        self.latent_u, self.latent_z = latent_u, latent_z
        gamma = {"gamma_init": gamma_init, "gamma_min": gamma_min, "levels": levels, "family": family}
        self.p_u = prior
        self.p_y_given_u = PYGivenU(latent_u, self.y_shape, arch, **gamma)
        self.p_z_given_yu = PZGivenYU(self.y_shape, latent_u, latent_z, arch)
        self.p_x_given_yz = PXGivenYZ(self.y_shape, latent_z, self.x_shape, scale, arch, noise, **gamma)

    def gammas(self) -> dict:
        """γ₁ (its mean over bands, or σ₁ at a zero log-scale output) and γ₂, for the history and summary;
        with generalized-normal pixels, their shapes p too (means over bands)."""
        values = {"gamma_x": self.p_x_given_yz.gamma.mean().item(), "gamma_y": self.p_y_given_u.gamma.item()}
        if self.p_x_given_yz.family == "gennorm":
            values.update(power_x=self.p_x_given_yz.power.mean().item(), power_y=self.p_y_given_u.power.mean().item())
        return values

    @property
    def k_x(self) -> int:
        return math.prod(self.x_shape)

    @property
    def k_y(self) -> int:
        return math.prod(self.y_shape)

    def forward(self, *args, **kwargs):
        """The model function (``model``): the module is what ``Trace_ELBO()(model, guide)`` takes."""
        return self.model(*args, **kwargs)

    def model(self, x=None, y=None, num_images=None, index=None):
        """Sample u, y, z, x in the order of the factorization, inside ``pyro.plate("data")``.

        ``x`` and ``y`` are observed when given. With neither, the function generates
        ``num_images`` images: u → y → z → x. Returns x. ``index`` (the images' positions in
        their data set) is for per-datapoint guides; the model does not need it.
        """
        with data_plate(x, y, num_images, self.p_x_given_yz.gamma_min.device):
            u = pyro.sample("u", self.p_u())  # the prior p(u): edit this line to swap it
            y = pyro.sample("y", self.p_y_given_u(u), obs=y)
            z = pyro.sample("z", self.p_z_given_yu(y, u))
            return pyro.sample("x", self.p_x_given_yz(y, z), obs=x)


def batch_size(x=None, y=None, num_images=None) -> int:
    """The size of the data plate: the number of images in x or y, else ``num_images``."""
    for images in (x, y):
        if images is not None:
            return images.shape[0]
    if num_images is None:
        raise ValueError("give x, y or num_images")
    return num_images


def data_plate(x=None, y=None, num_images=None, device=None):
    """``pyro.plate("data", N, dim=-1)`` whose index tensor is made on the data's device (or on
    ``device`` when generating), so a CUDA step creates no CPU tensor."""
    for images in (x, y):
        if images is not None:
            device = images.device
            break
    return pyro.plate("data", batch_size(x, y, num_images), dim=-1, device=device)
