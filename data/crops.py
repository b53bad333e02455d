"""Matching random crops of HR images and their LR images (issue 5, the ``folder`` data set)."""

import torch


def crop(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size``×``size`` patch of each image (N, C, H, W) whose corner is (top[n], left[n])."""
    n, c = images.shape[:2]
    steps = torch.arange(size, device=images.device)
    rows = (top.to(images.device)[:, None] + steps)[:, None, :, None]
    cols = (left.to(images.device)[:, None] + steps)[:, None, None, :]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    bands = torch.arange(c, device=images.device)[None, :, None, None]
    return images[batch, bands, rows, cols]


def crop_pairs(x: torch.Tensor, y: torch.Tensor | None, size: int, scale: int, generator=None):
    """A random ``size``×``size`` patch of each x and, when y is given, the patch of y it maps to:
    corner (s·i, s·j) in x, (i, j) in y, so the crop of y is exactly the crop of x at 1/s scale.
    Corners are drawn on the LR grid (from ``generator`` on the CPU when given)."""
    n, _, h, w = x.shape
    lr_size = size // scale
    device = x.device if generator is None else "cpu"
    top = torch.randint(0, h // scale - lr_size + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, w // scale - lr_size + 1, (n,), generator=generator, device=device)
    x_patch = crop(x, top * scale, left * scale, size)
    return x_patch, None if y is None else crop(y, top, left, lr_size)
