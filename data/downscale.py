"""The deterministic downscaling y = d(x) (SPEC §1)."""

import torch
from torch.nn import functional as F

DOWNSCALE_MODES = ("area", "bicubic")


def downscale(x: torch.Tensor, scale: int = 2, mode: str = "area") -> torch.Tensor:
    """d(x): (…, C, H, W) → (…, C, H/s, W/s) by area averaging (default) or antialiased bicubic."""
    if mode not in DOWNSCALE_MODES:
        raise ValueError(f"unknown downscale mode {mode!r}; choose from {', '.join(DOWNSCALE_MODES)}")
    images = x.reshape(-1, *x.shape[-3:])
    if mode == "area":
        small = F.interpolate(images, scale_factor=1 / scale, mode="area")
    else:
        small = F.interpolate(images, scale_factor=1 / scale, mode="bicubic", antialias=True,
                              align_corners=False).clamp(0, 1)
    return small.reshape(*x.shape[:-2], *small.shape[-2:])


def upsample(y: torch.Tensor, scale: int = 2, mode: str = "bicubic") -> torch.Tensor:
    """Classical upsampling of LR images (the baselines of super-resolution), clamped to [0, 1]."""
    images = y.reshape(-1, *y.shape[-3:])
    kwargs = {"align_corners": False} if mode == "bicubic" else {}
    big = F.interpolate(images, scale_factor=scale, mode=mode, **kwargs).clamp(0, 1)
    return big.reshape(*y.shape[:-2], *big.shape[-2:])
