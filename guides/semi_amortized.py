"""The semi-amortized guide (SPEC §5): the encoders' output refined by a few gradient steps of the
per-batch ELBO (after Kim et al., 2018).

Gradients: the refined parameters are λ_K = λ_0 + Δ with Δ = λ_K − λ_0 held constant, so the model
and the encoders are trained by the ELBO at λ_K and the encoders receive it as if at λ_0
(straight-through, first order); nothing is back-propagated through the inner steps.
"""

import functools

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch import nn

from guides.amortized import AmortizedGuide
from model.networks import MLP
from model.srvae import batch_size, data_plate


def step(value, grad, lr, limit=0.5):
    """One ascent step of the ELBO, each coordinate moved by at most ``limit``; a coordinate whose
    gradient is not finite stays where it is."""
    move = (-lr * grad).clamp(-limit, limit)
    return torch.where(torch.isfinite(move), value + move, value).detach().requires_grad_()


class SemiAmortizedGuide(AmortizedGuide):
    """q(u|y), q(z|x) from the encoders, then ``refine_steps`` steps of gradient ascent of the batch's
    ELBO on their means and log-scales (step ``refine_lr``, each move clipped to ±0.5). Refinement
    needs x; given y alone the encoder's q(u|y) is used as it is.

    The SRVAE whose ELBO the steps ascend is given by ``bind`` and held as a submodule: its parameters
    are the model's own, shared (the optimizer takes model and guide together, without repeats)."""

    data_parallel = compiles = False  # the inner optimisation differs between processes, and from a trace

    def __init__(self, x_shape, latent_u=4, latent_z=8, scale=2, downscale_mode="area", arch=MLP,
                 levels=None, refine_steps=5, refine_lr=0.01):
        super().__init__(x_shape, latent_u, latent_z, scale, downscale_mode, arch, levels)
        self.refine_steps, self.refine_lr = refine_steps, refine_lr
        self.model = None

    def bind(self, model: nn.Module) -> "SemiAmortizedGuide":
        self.model = model
        return self

    def guide(self, x=None, y=None, num_images=None, index=None):
        """Same signature as the model's."""
        y_seen = self.d(x) if y is None else y
        q_u = self.q_u_given_y(y_seen).base_dist
        params = {"u_loc": q_u.loc, "u_log_scale": q_u.scale.log()}
        if x is not None:
            q_z = self.q_z_given_x(x).base_dist
            params.update(z_loc=q_z.loc, z_log_scale=q_z.scale.log())
            if self.refine_steps > 0:
                params = self.refine(params, x, y)
        self.sample_sites(params, x, y, batch_size(x, y, num_images))

    def sample_sites(self, params, x, y, n, **_):
        """The guide's sites at the given parameters (also the inner guide of the refinement)."""
        with data_plate(x, y, n, params["u_loc"].device):
            if y is None:
                pyro.sample("y", dist.Delta(self.d(x), event_dim=3))
            pyro.sample("u", dist.Normal(params["u_loc"], params["u_log_scale"].exp()).to_event(1))
            if "z_loc" in params:
                pyro.sample("z", dist.Normal(params["z_loc"], params["z_log_scale"].exp()).to_event(1))

    def refine(self, params: dict, x, y) -> dict:
        """λ_K after ``refine_steps`` steps λ ← λ + lr·∇_λ ELBO(λ), each on a one-sample Trace_ELBO of
        the batch, hidden from any enclosing inference (``poutine.block``)."""
        if self.model is None:
            raise RuntimeError("a semi-amortized guide refines against a model: bind(model) first")
        elbo = Trace_ELBO(max_plate_nesting=1)
        current = {k: v.detach().requires_grad_() for k, v in params.items()}
        with poutine.block(), torch.enable_grad():
            for _ in range(self.refine_steps):
                at_current = functools.partial(self.sample_sites, current, n=x.shape[0])
                loss = elbo.differentiable_loss(self.model.model, at_current, x, y)
                grads = torch.autograd.grad(loss, list(current.values()))
                current = {k: step(v, g, self.refine_lr) for (k, v), g in zip(current.items(), grads, strict=True)}
        return {k: params[k] + (current[k] - params[k]).detach() for k in params}
