"""ELU(h) = h for h > 0, eʰ − 1 otherwise, computed with exp.

torch's own ``elu`` goes through a scalar ``expm1`` on this CPU build: 6–10 ns per negative
element against 0.4–1.4 ns for ``exp``. The same function from vectorized exp and where made the
K = 1000 importance-weighted evaluation of the digits test set 1.4× faster for an untrained
model (6.8 → 4.8 s in one process, half its inputs negative); for the trained default model two
separate runs took 6.1 and 5.7 s, within the machine's drift. exp(h) − 1 differs from expm1(h)
by at most 6e-8 absolute; the default run's metrics move by about 1e-6.

Both passes are written with ``clamp`` rather than ``where``, which is slow here (17 µs for a
64 × 256 batch against 2 µs for a clamp): max(h, 0) + (exp(min(h, 0)) − 1) is the same sum, bit
for bit, as the two branches (one of its terms is exactly 0), and it made the forward pass 1.5×
and the backward pass 4.6× faster. Each pass writes into the tensors it has just made rather
than allocating one per operation (two fresh tensors instead of five forward, one instead of
three backward), the same arithmetic in the same order: on the large batches of the K = 1000
evaluation that cut its time by a third for 50 × 256 draws per pass (3.2 → 2.1 s).
"""

import torch
from torch import nn


class _ELUFunction(torch.autograd.Function):
    """out = max(h, 0) + (exp(min(h, 0)) − 1): h for h > 0, eʰ − 1 otherwise;
    d out / dh = min(out, 0) + 1: 1 for h > 0, out + 1 otherwise."""

    @staticmethod
    def forward(ctx, h):
        out = h.clamp(min=0)
        out += h.clamp(max=0).exp_().sub_(1)  # in place: two fresh tensors instead of five
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return out.clamp(max=0).add_(1).mul_(grad)


class ELU(nn.Module):
    """ELU with α = 1 (``nn.ELU``'s function), from ``exp``; no parameters, so state dicts keep
    their keys."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return _ELUFunction.apply(h)
