"""The local guide (SPEC §5): free variational parameters per datapoint.

    q(u_n) = N(m_n, diag s_n²),  q(z_n) = N(μ_n, diag σ_n²),  n the image's position in its data set
"""

import copy

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO
from torch import nn

from guides.amortized import DownscalingGuide
from guides.fitting import fit_guide_parameters
from model.scales import softplus_inverse, softplus_scale
from model.srvae import batch_size, data_plate


class LocalGuide(DownscalingGuide):
    """N × L means and scales for u and z, rows picked by the batch's ``index`` (the data loader
    yields it with each batch). New data get a fitted copy (``fitted_to``), the model frozen."""

    amortized, super_resolves_from_y, data_parallel, compiles = False, False, False, False
    prior_encoder = None  # no network: a VampPrior makes its own encoder

    def __init__(self, x_shape, num_images: int, latent_u=4, latent_z=8, scale=2, downscale_mode="area",
                 levels=None, arch=None):
        """``arch`` is accepted for a uniform interface: a local guide has no network."""
        super().__init__(scale, downscale_mode, levels)
        self.latent_u, self.latent_z = latent_u, latent_z
        self.reset(num_images)

    def reset(self, num_images: int) -> None:
        """Fresh parameters for ``num_images`` images: q = N(0, 0.1² I) for each."""
        device = self.u_loc.device if hasattr(self, "u_loc") else None
        rho = softplus_inverse(0.1)
        self.u_loc = nn.Parameter(torch.zeros(num_images, self.latent_u, device=device))
        self.u_rho = nn.Parameter(torch.full((num_images, self.latent_u), rho, device=device))
        self.z_loc = nn.Parameter(torch.zeros(num_images, self.latent_z, device=device))
        self.z_rho = nn.Parameter(torch.full((num_images, self.latent_z), rho, device=device))

    def guide(self, x=None, y=None, num_images=None, index=None):
        """Same signature as the model's; ``index`` defaults to the first rows (0 … N − 1)."""
        n = batch_size(x, y, num_images)
        if index is None:
            index = torch.arange(n, device=self.u_loc.device)
        with data_plate(x, y, n, self.u_loc.device):
            if y is None:
                pyro.sample("y", dist.Delta(self.d(x), event_dim=3))
            pyro.sample("u", dist.Normal(self.u_loc[index], softplus_scale(self.u_rho[index])).to_event(1))
            if x is not None:
                pyro.sample("z", dist.Normal(self.z_loc[index], softplus_scale(self.z_rho[index])).to_event(1))

    def fitted_to(self, model, x, steps: int, lr: float = 0.05, batch: int = 256, y=None, progress=None
                  ) -> "LocalGuide":
        """A copy with fresh parameters for the images x (paired with y, if given), fitted by ``steps``
        SVI steps (Trace_ELBO, Adam, minibatches of ``batch``) with the model's parameters left as they
        are; ``progress(done)`` counts the steps."""
        if steps < 1:
            raise ValueError("a local guide needs fitting steps (> 0) before it can evaluate new data")
        fitted = copy.deepcopy(self)
        fitted.reset(len(x))
        elbo = Trace_ELBO(max_plate_nesting=1)

        def minibatch_loss():
            index = torch.randperm(len(x), device=x.device)[:batch]
            return elbo.differentiable_loss(model.model, fitted.guide, x[index], None if y is None else y[index],
                                            index=index)

        fit_guide_parameters(list(fitted.parameters()), minibatch_loss, steps, lr, progress)
        return fitted
