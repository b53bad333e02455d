"""Registering a module's parameters in Pyro's param store, as an opt-in wrapper.

The model and guide functions do not call ``pyro.module`` themselves: run.py trains the modules'
parameters with ``torch.optim`` directly, and registering ~25 parameters through Pyro's effect
stack on every call was most of Pyro's per-step overhead. To train with ``pyro.infer.SVI`` and a
Pyro optimizer, which finds parameters through the param store, wrap the functions:

    svi = SVI(registered(model.model, model), registered(guide.guide, guide), pyro.optim.Adam(...),
              Trace_ELBO())
"""

import functools

import pyro
from torch import nn


def registered(fn, module: nn.Module, name: str | None = None):
    """``fn`` that first registers every parameter of ``module`` with ``pyro.module``, so that
    Pyro's optimizers (and ``JitTrace_ELBO``, which takes them as inputs) see them. The default
    ``name`` is unique to this module object: another module's parameters left in the global param
    store under the same name would otherwise be used instead."""
    name = name or f"{type(module).__name__}_{id(module):x}"

    @functools.wraps(fn)
    def with_parameters(*args, **kwargs):
        pyro.module(name, module)
        return fn(*args, **kwargs)

    return with_parameters
