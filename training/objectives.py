"""Training objectives: each is a loss(x, y, kl_scale) → −ELBO summed over the batch, differentiable,
with the KL terms multiplied by ``kl_scale`` (β of the KL warm-up; 1 is the ELBO itself)."""

from pyro.infer import JitTrace_ELBO, Trace_ELBO

from model.elbo import explicit_elbo
from model.registration import registered
from training.warmup import ScaleSites

OBJECTIVES = {
    "pyro": "Pyro's Trace_ELBO (Monte-Carlo log p − log q over every site)",
    "explicit": "the explicit ELBO of SPEC §4 (closed-form KLs, Monte-Carlo reconstructions)",
    "pyro-jit": "Pyro's JitTrace_ELBO: the same estimator compiled once per batch shape, less per-step Python "
                "(amortized guides, no KL warm-up)",
}
JIT_GUIDES = ("amortized",)


def make_objective(name: str, model, guide, mixture_kl: str = "tight", num_particles: int = 1):
    """The loss function of objective ``name`` for this model and guide module."""
    if name == "pyro":
        elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1)
        models_y = model.k_y > 0  # the SRVAE; the VAE baseline models x alone

        def loss(x, y=None, kl_scale=1.0, index=None):
            if y is None and models_y:  # observe y = d(x): the guide's δ(y − d(x)) adds log 1 = 0 (SPEC §3),
                y = guide.d(x)  # and one sample site fewer is less of Pyro's per-site work (issue 6)
            if kl_scale == 1.0:
                return elbo.differentiable_loss(model.model, guide.guide, x, y, index=index)
            scaled = ScaleSites(kl_scale)
            return elbo.differentiable_loss(scaled(model.model), scaled(guide.guide), x, y, index=index)
    elif name == "pyro-jit":
        elbo = JitTrace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1,
                             ignore_jit_warnings=True)
        model_fn, guide_fn = registered(model.model, model), registered(guide.guide, guide)  # parameters as inputs
        models_y = model.k_y > 0

        def loss(x, y=None, kl_scale=1.0, index=None):
            if kl_scale != 1.0:
                raise ValueError("the pyro-jit objective is compiled without KL scaling: use pyro for a warm-up")
            if y is None and models_y:
                y = guide.d(x)
            return elbo.differentiable_loss(model_fn, guide_fn, x, y)
    elif name == "explicit":

        def loss(x, y=None, kl_scale=1.0, index=None):
            t = explicit_elbo(model, guide.guide, x, y, num_particles, mixture_kl, index)
            return -(t.rec_x + t.rec_y - kl_scale * (t.kl_u + t.kl_z)).sum()
    else:
        raise ValueError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    return loss
