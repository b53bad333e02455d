"""Fitting a guide's own parameters with the model frozen (SPEC §5: local parameters for new data)."""

import torch


def fit_guide_parameters(params: list, loss_fn, steps: int, lr: float, progress=None) -> None:
    """``steps`` Adam steps on ``params`` alone, minimising ``loss_fn()``; gradients are taken with
    ``torch.autograd.grad`` for these parameters only, so the model's stay untouched (and without
    .grad), also when called under ``torch.no_grad``. ``progress(done)`` counts the steps."""
    optimizer = torch.optim.Adam(params, lr=lr)
    with torch.enable_grad():
        for step in range(steps):
            for param, grad in zip(params, torch.autograd.grad(loss_fn(), params), strict=True):
                param.grad = grad
            optimizer.step()
            if progress is not None:
                progress(step + 1)
