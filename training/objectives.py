"""Training objectives (SPEC §7, 'Train'), each an ``nn.Module`` over the model and guide modules, the
form Pyro documents for torch optimizers (``Trace_ELBO()(model, guide)``): its ``parameters()`` are the
model's and the guide's, each once, and calling it on a batch, ``objective(x, y, kl_scale, index)``,
gives the −ELBO summed over the batch, differentiable, with the KL terms multiplied by ``kl_scale``
(β of the KL warm-up; 1 is the ELBO itself)."""

import contextlib
import warnings

from pyro.infer import JitTrace_ELBO, Trace_ELBO
from torch import nn

from model.elbo import explicit_elbo
from model.registration import Registered
from training.warmup import ScaleSites, WeightPixels

OBJECTIVES = {
    "pyro": "Pyro's Trace_ELBO (Monte-Carlo log p − log q over every site)",
    "explicit": "the explicit ELBO of SPEC §4 (closed-form KLs, Monte-Carlo reconstructions)",
    "pyro-jit": "Pyro's JitTrace_ELBO: the same estimator compiled once per batch shape, less per-step Python "
                "(amortized guides, no KL warm-up)",
}


class PyroObjective(nn.Module):
    """Pyro's estimator of the −ELBO, ``elbo(model, guide)`` (an ``ELBOModule``), run under the training's
    effect handlers: the KL warm-up's scale of the latent sites, and with ``nll_beta`` > 0 the β-NLL
    weights of the pixels of x (``training.warmup``). The model observes y (``observed_y``)."""

    def __init__(self, model: nn.Module, guide: nn.Module, elbo, nll_beta: float = 0.0):
        super().__init__()
        self.model, self.guide = model, guide
        self.elbo = elbo(model, guide)
        self.nll_beta = nll_beta

    def forward(self, x, y=None, kl_scale: float = 1.0, index=None):
        with contextlib.ExitStack() as handlers:
            if kl_scale != 1.0:
                handlers.enter_context(ScaleSites(kl_scale))
            if self.nll_beta:
                handlers.enter_context(WeightPixels(self.nll_beta))
            return self.elbo(x, observed_y(self.model, self.guide, x, y), index=index)


class CompiledObjective(nn.Module):
    """``JitTrace_ELBO`` as a module: the same estimator, traced once per batch shape. It finds the
    parameters in Pyro's param store (``Registered``), and has no KL scaling (compiled at β = 1)."""

    def __init__(self, model: nn.Module, guide: nn.Module, elbo: JitTrace_ELBO):
        super().__init__()
        self.model, self.guide = model, guide
        self.elbo = elbo(Registered(model), Registered(guide))

    def forward(self, x, y=None, kl_scale: float = 1.0, index=None):
        if kl_scale != 1.0:
            raise ValueError("the pyro-jit objective is compiled without KL scaling: use pyro for a warm-up")
        with warnings.catch_warnings():  # only here: torch 2.14 marks torch.jit.trace deprecated on every
            # trace, and the estimator is tested against Trace_ELBO, so the warning repeats what is known
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace` is deprecated", category=FutureWarning)
            return self.elbo(x, observed_y(self.model, self.guide, x, y))


class ExplicitObjective(nn.Module):
    """The explicit −ELBO of SPEC §4 (``model.elbo.explicit_elbo``), its KL terms scaled by ``kl_scale``."""

    def __init__(self, model: nn.Module, guide: nn.Module, num_particles: int = 1, mixture_kl: str = "tight"):
        super().__init__()
        self.model, self.guide = model, guide
        self.num_particles, self.mixture_kl = num_particles, mixture_kl

    def forward(self, x, y=None, kl_scale: float = 1.0, index=None):
        t = explicit_elbo(self.model, self.guide.guide, x, y, self.num_particles, self.mixture_kl, index)
        return -(t.rec_x + t.rec_y - kl_scale * (t.kl_u + t.kl_z)).sum()


def make_objective(name: str, model, guide, mixture_kl: str = "tight", num_particles: int = 1,
                   nll_beta: float = 0.0) -> nn.Module:
    """The objective ``name`` (``OBJECTIVES``) for these model and guide modules; ``nll_beta`` > 0 weighs
    the pixels of x by the β-NLL weights (the pyro objective only)."""
    if nll_beta and name != "pyro":
        raise ValueError(f"the β-NLL weights are applied through Pyro's Trace_ELBO; objective {name!r} has none")
    particles = {"num_particles": num_particles, "vectorize_particles": num_particles > 1, "max_plate_nesting": 1}
    if name == "pyro":
        return PyroObjective(model, guide, Trace_ELBO(**particles), nll_beta)
    if name == "pyro-jit":
        return CompiledObjective(model, guide, JitTrace_ELBO(**particles, ignore_jit_warnings=True))
    if name == "explicit":
        return ExplicitObjective(model, guide, num_particles, mixture_kl)
    raise ValueError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")


def observed_y(model, guide, x, y):
    """y for the model to observe: the given LR images, else d(x) for a model of y (the SRVAE; the
    VAE models x alone). Observing y = d(x) is the ELBO of sampling the guide's δ(y − d(x)) site,
    which adds log 1 = 0 (SPEC §3), with one sample site fewer of Pyro's per-site work."""
    if y is None and model.models_y:
        return guide.d(x)
    return y
