"""ELU(h) = h for h > 0, eʰ − 1 otherwise, computed with exp (issue 6).

torch's own ``elu`` goes through a scalar ``expm1`` on this CPU build: 6–10 ns per negative
element against 0.4–1.4 ns for ``exp``. The same function from vectorized exp and where made the
K = 1000 importance-weighted evaluation of the digits test set 1.4× faster for an untrained
model (6.8 → 4.8 s in one process, half its inputs negative); for the trained default model two
separate runs took 6.1 and 5.7 s, within the machine's drift. exp(h) − 1 differs from expm1(h)
by at most 6e-8 absolute; the default run's metrics move by about 1e-6.
"""

import torch
from torch import nn


class _ELUFunction(torch.autograd.Function):
    """out = h (h > 0), exp(min(h, 0)) − 1 (h ≤ 0); d out / dh = 1 (h > 0), out + 1 (h ≤ 0).
    The clamp keeps the unused branch finite."""

    @staticmethod
    def forward(ctx, h):
        out = torch.where(h > 0, h, h.clamp(max=0).exp() - 1)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * torch.where(out > 0, 1.0, out + 1)


class ELU(nn.Module):
    """ELU with α = 1 (``nn.ELU``'s function), from ``exp``; no parameters, so state dicts keep
    their keys."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return _ELUFunction.apply(h)
