"""The deterministic downscaling y = d(x) (SPEC §1)."""

import torch
from torch.nn import functional as F

DOWNSCALE_MODES = ("area", "bicubic")


def quantize(images: torch.Tensor, levels: int) -> torch.Tensor:
    """Round to the centres (v + ½)/L of the L bins of [0, 1]."""
    return ((images * levels).floor().clamp(0, levels - 1) + 0.5) / levels


def downscale(x: torch.Tensor, scale: int = 2, mode: str = "area", levels: int | None = None) -> torch.Tensor:
    """d(x): (…, C, H, W) → (…, C, H/s, W/s) by area averaging (default) or antialiased bicubic;
    with ``levels``, rounded to that pixel grid (the discretized likelihood's y, SPEC §4)."""
    if mode not in DOWNSCALE_MODES:
        raise ValueError(f"unknown downscale mode {mode!r}; choose from {', '.join(DOWNSCALE_MODES)}")
    images = x.reshape(-1, *x.shape[-3:])
    if mode == "area":
        small = F.interpolate(images, scale_factor=1 / scale, mode="area")
    else:
        small = F.interpolate(images, scale_factor=1 / scale, mode="bicubic", antialias=True,
                              align_corners=False).clamp(0, 1)
    small = small.reshape(*x.shape[:-2], *small.shape[-2:])
    return small if levels is None else quantize(small, levels)


def upsample(y: torch.Tensor, scale: int = 2, mode: str = "bicubic", clamp: bool = True) -> torch.Tensor:
    """Classical upsampling of LR images (the baselines of super-resolution), clamped to [0, 1] unless
    ``clamp`` is False (a model's mean, whose valid pixels may lie beyond the training range)."""
    images = y.reshape(-1, *y.shape[-3:])
    kwargs = {"align_corners": False} if mode == "bicubic" else {}
    big = F.interpolate(images, scale_factor=scale, mode=mode, **kwargs)
    big = big.clamp(0, 1) if clamp else big
    return big.reshape(*y.shape[:-2], *big.shape[-2:])


def row_norms(x_shape, scale: int = 2, mode: str = "area") -> torch.Tensor:
    """√diag(AAᵀ) for the linear map A of d (without the clamp), shape (C, H/s, W/s).

    d acts on each band alike and separably, A = A_H ⊗ A_W, so a row's squared norm is the
    product of the 1-D factors' row norms: O(H²·W + W²·H) work instead of O((C·H·W)²). A factor
    is read off d applied to one-line images (a row or a column of ones), as the filters' weights
    sum to 1 along the other axis.
    """
    c, h, w = x_shape
    options = {"mode": "area"} if mode == "area" else {"mode": "bicubic", "antialias": True, "align_corners": False}
    lines = torch.eye(h)[:, None, :, None].expand(h, 1, h, w)  # image i: row i of ones
    a_h = F.interpolate(lines, scale_factor=1 / scale, **options)[:, 0, :, 0]  # (H, H/s): A_H transposed
    lines = torch.eye(w)[:, None, None, :].expand(w, 1, h, w)  # image j: column j of ones
    a_w = F.interpolate(lines, scale_factor=1 / scale, **options)[:, 0, 0, :]
    norms = a_h.pow(2).sum(0)[:, None] * a_w.pow(2).sum(0)[None, :]
    return norms.sqrt().expand(c, h // scale, w // scale)
