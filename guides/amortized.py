"""The amortized guide (SPEC §3, §5; seed eq. 4 and 8):

    q(u, z, y | x) = q(z | x) · q(u | y) · q(y | x),   q(y | x) = δ(y − d(x))
"""

from typing import ClassVar

import pyro
import pyro.distributions as dist
from torch import nn

from data.downscale import downscale
from model.networks import MLP, Architecture
from model.srvae import data_plate, lr_shape


class ImageEncoder(nn.Module):
    """N(μ(image), diag σ²(image)) from the image's features (flattened, or convolutional)."""

    def __init__(self, image_shape, latent_dim, arch: Architecture):
        super().__init__()
        self.features, width = arch.image_features(image_shape)
        self.gaussian = arch.gaussian(width, latent_dim)

    def forward(self, image):
        return self.gaussian(self.features(image))

    def loc_scale(self, image):
        """μ and σ without a distribution object (the plain-PyTorch baseline of ``bench``)."""
        return self.gaussian.loc_scale(self.features(image))


class QUGivenY(ImageEncoder):
    """q(u | y) = N(μ(y), diag σ²(y)): the encoder of the LR image."""


class QZGivenX(ImageEncoder):
    """q(z | x) = N(μ(x), diag σ²(x)): the encoder of the HR image (seed eq. 8 drops y)."""


class DownscalingGuide(nn.Module):
    """What every guide knows of the data, y = d(x) (SPEC §1), and what each guide kind declares:

    - ``amortized``: gives q for images it was not trained on (a local guide knows only its own);
    - ``super_resolves_from_y``: given y alone it proposes the latents of p(x | y) as they are; else
      a posterior is fitted to y and its draws resampled (``evaluation.superres``);
    - ``data_parallel``: the same on every process of a data-parallel run (no per-image parameters,
      no inner optimisation);
    - ``compiles``: runs under ``JitTrace_ELBO``;
    - ``prior_encoder``: the encoder whose posteriors a VampPrior mixes (None when it has none).

    ``bind(model)`` gives a guide the model it approximates the posterior of, once both are built
    (a VampPrior needs the guide's encoder first); only a guide that optimises against the model keeps it.
    """

    amortized: ClassVar[bool]
    super_resolves_from_y: ClassVar[bool]
    data_parallel: ClassVar[bool]
    compiles: ClassVar[bool]

    def __init__(self, scale=2, downscale_mode="area", levels=None):
        super().__init__()
        self.scale, self.downscale_mode, self.levels = scale, downscale_mode, levels

    def forward(self, *args, **kwargs):
        """The guide function (``guide``, the model's signature), as ``Trace_ELBO()(model, guide)`` calls it."""
        return self.guide(*args, **kwargs)

    def bind(self, model: nn.Module) -> "DownscalingGuide":
        return self

    def d(self, x):
        """y = d(x): the downscaling of SPEC §1 (rounded to the pixel grid for a discretized likelihood)."""
        return downscale(x, self.scale, self.downscale_mode, self.levels)


class AmortizedGuide(DownscalingGuide):
    """Encoder networks give q(u|y) and q(z|x) in one forward pass."""

    amortized, super_resolves_from_y, data_parallel, compiles = True, True, True, True

    def __init__(self, x_shape, latent_u=4, latent_z=8, scale=2, downscale_mode="area", arch=MLP,
                 levels=None):
        super().__init__(scale, downscale_mode, levels)
        self.q_u_given_y = QUGivenY(lr_shape(x_shape, scale), latent_u, arch)
        self.q_z_given_x = QZGivenX(x_shape, latent_z, arch)

    @property
    def prior_encoder(self) -> nn.Module:
        return self.q_u_given_y

    def guide(self, x=None, y=None, num_images=None, index=None):
        """Same signature as ``SRVAE.model``. y is a ``Delta`` site at d(x) (log-density 0)
        unless the model observes it (paired data); z is inferred only when x is seen.

        q(u | y) is computed from d(x) itself, not from the site's value: under a plate of draws
        that value is d(x) repeated once per draw, and the encoder would run on every copy (a
        quarter of the matrix products of the K = 1000 evaluation)."""
        with data_plate(x, y, num_images):
            if y is None:
                y = self.d(x)
                pyro.sample("y", dist.Delta(y, event_dim=3))
            pyro.sample("u", self.q_u_given_y(y))
            if x is not None:
                pyro.sample("z", self.q_z_given_x(x))
