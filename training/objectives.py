"""Training objectives: each is a loss(x, y) → −ELBO summed over the batch, differentiable."""

from pyro.infer import Trace_ELBO

from model.elbo import explicit_elbo

OBJECTIVES = {
    "pyro": "Pyro's Trace_ELBO (Monte-Carlo log p − log q over every site)",
    "explicit": "the explicit ELBO of SPEC §4 (closed-form KLs, Monte-Carlo reconstructions)",
}


def make_objective(name: str, model, guide, mixture_kl: str = "tight", num_particles: int = 1):
    """The loss function of objective ``name`` for this model and guide module."""
    if name == "pyro":
        elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1)

        def loss(x, y=None):
            return elbo.differentiable_loss(model.model, guide.guide, x, y)
    elif name == "explicit":

        def loss(x, y=None):
            terms = explicit_elbo(model, guide.guide, x, y, num_samples=num_particles, mixture_kl=mixture_kl)
            return -terms.elbo.sum()
    else:
        raise ValueError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    return loss
