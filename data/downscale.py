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


def upsample(y: torch.Tensor, scale: int = 2, mode: str = "bicubic") -> torch.Tensor:
    """Classical upsampling of LR images (the baselines of super-resolution), clamped to [0, 1]."""
    images = y.reshape(-1, *y.shape[-3:])
    kwargs = {"align_corners": False} if mode == "bicubic" else {}
    big = F.interpolate(images, scale_factor=scale, mode=mode, **kwargs).clamp(0, 1)
    return big.reshape(*y.shape[:-2], *big.shape[-2:])
