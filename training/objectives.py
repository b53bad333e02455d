"""Training objectives: each is a loss(x, y, kl_scale) → −ELBO summed over the batch, differentiable,
with the KL terms multiplied by ``kl_scale`` (β of the KL warm-up; 1 is the ELBO itself)."""

import warnings

from pyro.infer import JitTrace_ELBO, Trace_ELBO

from model.elbo import explicit_elbo
from model.registration import registered
from training.warmup import with_kl_scale, with_pixel_weights

OBJECTIVES = {
    "pyro": "Pyro's Trace_ELBO (Monte-Carlo log p − log q over every site)",
    "explicit": "the explicit ELBO of SPEC §4 (closed-form KLs, Monte-Carlo reconstructions)",
    "pyro-jit": "Pyro's JitTrace_ELBO: the same estimator compiled once per batch shape, less per-step Python "
                "(amortized guides, no KL warm-up)",
}


def make_objective(name: str, model, guide, mixture_kl: str = "tight", num_particles: int = 1,
                   nll_beta: float = 0.0):
    """The loss function of objective ``name`` for this model and guide module; ``nll_beta`` > 0 weighs
    the pixels of x by the β-NLL weights (``training.warmup.PixelWeighted``; the pyro objective only)."""
    if nll_beta and name != "pyro":
        raise ValueError(f"the β-NLL weights are applied through Pyro's Trace_ELBO; objective {name!r} has none")
    if name == "pyro":
        elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1)
        model_fn = with_pixel_weights(model.model, nll_beta)

        def loss(x, y=None, kl_scale=1.0, index=None):
            return elbo.differentiable_loss(with_kl_scale(model_fn, kl_scale), with_kl_scale(guide.guide, kl_scale),
                                            x, observed_y(model, guide, x, y), index=index)
    elif name == "pyro-jit":
        elbo = JitTrace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1,
                             ignore_jit_warnings=True)
        model_fn, guide_fn = registered(model.model, model), registered(guide.guide, guide)  # parameters as inputs

        def loss(x, y=None, kl_scale=1.0, index=None):
            if kl_scale != 1.0:
                raise ValueError("the pyro-jit objective is compiled without KL scaling: use pyro for a warm-up")
            with warnings.catch_warnings():  # only here: torch 2.14 marks torch.jit.trace deprecated on every
                # trace, and the estimator is tested against Trace_ELBO, so the warning repeats what is known
                warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace` is deprecated", category=FutureWarning)
                return elbo.differentiable_loss(model_fn, guide_fn, x, observed_y(model, guide, x, y))
    elif name == "explicit":

        def loss(x, y=None, kl_scale=1.0, index=None):
            t = explicit_elbo(model, guide.guide, x, y, num_particles, mixture_kl, index)
            return -(t.rec_x + t.rec_y - kl_scale * (t.kl_u + t.kl_z)).sum()
    else:
        raise ValueError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    return loss


def observed_y(model, guide, x, y):
    """y for the model to observe: the given LR images, else d(x) for a model of y (the SRVAE; the
    VAE models x alone). Observing y = d(x) is the ELBO of sampling the guide's δ(y − d(x)) site,
    which adds log 1 = 0 (SPEC §3), with one sample site fewer of Pyro's per-site work."""
    if y is None and model.models_y:
        return guide.d(x)
    return y
