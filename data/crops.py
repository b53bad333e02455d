"""Matching random crops of HR images and their LR images, and their random symmetries (the ``folder``
data set)."""

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


def symmetries(x: torch.Tensor, y: torch.Tensor | None):
    """Each image of x (and its y) under one of the 8 symmetries of the square, drawn uniformly per image
    with the global torch RNG: a transpose, then a flip of the rows and one of the columns, each with
    probability ½. Square images only; area downscaling commutes with all of them, so y = d(x) still holds."""
    flips = torch.rand(3, x.shape[0], device=x.device) < 0.5
    pairs = [x] if y is None else [x, y]
    for k, flip in enumerate(flips):
        mask = flip[:, None, None, None]
        pairs = [torch.where(mask, image.transpose(-1, -2) if k == 0 else image.flip(-k), image) for image in pairs]
    return pairs[0], None if y is None else pairs[1]
