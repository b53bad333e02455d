"""Registering a module's parameters in Pyro's param store, as an opt-in wrapper.

The model and guide do not call ``pyro.module`` themselves: training optimises the parameters of
the objective module (``Trace_ELBO()(model, guide)``) with ``torch.optim``, and registering every
parameter through Pyro's effect stack on each call was most of Pyro's per-step overhead. What finds
parameters through the param store needs it back: ``JitTrace_ELBO``, which takes them as inputs of
the compiled function, and ``pyro.infer.SVI`` with a Pyro optimizer:

    svi = SVI(Registered(model), Registered(guide), pyro.optim.Adam(...), Trace_ELBO())
"""

import pyro
from torch import nn


class Registered(nn.Module):
    """A model or guide module (called as its ``forward``) that first registers every parameter of
    the module with ``pyro.module``. The name is unique to the module object: another module's
    parameters left in the global param store under the same name would otherwise be used instead."""

    def __init__(self, module: nn.Module, name: str | None = None):
        super().__init__()
        self.module = module
        self.name = name or f"{type(module).__name__}_{id(module):x}"

    def forward(self, *args, **kwargs):
        pyro.module(self.name, self.module)
        return self.module(*args, **kwargs)
