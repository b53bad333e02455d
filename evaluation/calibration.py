"""The scene's own check of its intervals, one octave down (Wald's protocol applied to the input itself).

On a place unlike the training places the predictive's width can be off by a factor (wider over a flat
shore, narrower over mountains) although its ranking of the errors holds. The scene carries a check of its
own: super-resolve d(y) and compare with y, which is known. For the central 90 % interval [q05, q95] and
the mean m of a pixel whose truth is v, the stretch

    t = (v − m)/(q95 − m) if v > m,   (v − m)/(q05 − m) otherwise

is the least factor for which the interval stretched about its mean, m + t·(q − m), holds v; the 0.9
quantile of t over a band's pixels is the factor that makes the band's interval hold 90 % of them.
The detail lost from one octave to the next is not the same size as the next one's, so the coarse factor
is not the fine one: a checkpoint carries the ratio of the two measured on its training places' held-out
rows (``octave_ratio``, written by ``experiment.calibration``), and the scene's factor is that ratio times
the factor measured on the scene one octave down.

The same tiles say how much of the mean's own detail the scene supports. With b the bicubic upsampling of
the LR tile and m the SR mean, the detail m − b is weighed by the w that brings b + w·(m − b) nearest to
the truth in least squares, w = ⟨m − b, v − b⟩ / ⟨m − b, m − b⟩ over a band's pixels, clipped to [0, 1]:
on a scene where the model draws more detail than is there (or the wrong detail) the mean falls back
toward what y alone supports, and never further than bicubic; a model that is right keeps w = 1. The
weight found one octave down is used as it is one octave up, and the whole predictive moves with its mean
before its interval is checked.
"""

import numpy as np
import torch

from data.downscale import downscale, upsample

LEVEL = 0.90  # the interval that is calibrated: q05 … q95
PIXELS = ("truth", "mean", "q05", "q95", "bicubic")  # what tile_pixels keeps of each pixel
MOVED = ("mean", "q05", "q95", "samples")  # what moves with the mean (toward_bicubic)


def pixel_stretches(truth: torch.Tensor, mean: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The least t per pixel for which m + t·(low − m) ≤ truth ≤ m + t·(high − m) (0 where truth = m)."""
    deviation = truth - mean
    side = torch.where(deviation > 0, high - mean, low - mean)
    return torch.where(deviation == 0, torch.zeros_like(deviation), deviation / side)


def tile_pixels(draw, truth_image: torch.Tensor, valid: torch.Tensor | None, scale: int, tile: tuple[int, int],
                ring: int, count: int, samples: int, generator: np.random.Generator, mode: str = "area",
                batch: int = 64) -> dict:
    """The pixels of ``count`` random tiles, per band (C, N each): ``truth``, the SR ``mean``, ``q05``, ``q95``
    and the ``bicubic`` upsampling of the LR tile. The LR tiles are cut from d(``truth_image``) (C, H, W,
    the model's units), super-resolved by ``draw`` (``predictive_components``'s signature, ``samples`` draws of
    each tile), and compared with ``truth_image`` inside ``ring`` HR pixels of each tile's border (where the
    scene's tiles blend with their neighbours). Tiles with a missing pixel (``valid`` False, at the truth's
    resolution) are left out; (C, 0) arrays when none is whole."""
    from evaluation.tiles import summarise

    lr = downscale(truth_image, scale, mode)
    (th, tw), (bands, h, w) = tile, lr.shape
    rows, cols = generator.integers(0, h - th + 1, count), generator.integers(0, w - tw + 1, count)
    corners = [(r, c) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
               if valid is None or bool(valid[scale * r:scale * (r + th), scale * c:scale * (c + tw)].all())]
    inner = (slice(None), slice(None), slice(ring, scale * th - ring), slice(ring, scale * tw - ring))
    parts = {name: [torch.zeros(bands, 0)] for name in PIXELS}
    for first in range(0, len(corners), batch):
        chosen = corners[first:first + batch]
        tiles = torch.stack([lr[:, r:r + th, c:c + tw] for r, c in chosen])
        stats = summarise(*draw(tiles, samples), keep=0)
        stats["truth"] = torch.stack([truth_image[:, scale * r:scale * (r + th), scale * c:scale * (c + tw)]
                                      for r, c in chosen])
        stats["bicubic"] = upsample(tiles, scale, "bicubic", clamp=False)
        for name in PIXELS:
            parts[name].append(stats[name][inner].transpose(0, 1).reshape(bands, -1).float().cpu())
    return {name: torch.cat(part, dim=1) for name, part in parts.items()}


def residual_weight(pixels: dict) -> list[float]:
    """The weight per band of the mean's detail over bicubic that fits the truth best,
    ⟨m − b, v − b⟩ / ⟨m − b, m − b⟩ clipped to [0, 1] (1 where the mean is bicubic, or without pixels)."""
    detail = (pixels["mean"] - pixels["bicubic"]).double()
    wanted = (pixels["truth"] - pixels["bicubic"]).double()
    power = (detail * detail).sum(1)
    fit = torch.where(power > 0, (detail * wanted).sum(1) / power.clamp(min=torch.finfo(power.dtype).tiny), 1.0)
    return fit.clamp(0.0, 1.0).tolist()


def toward_bicubic(maps: dict, bicubic, weight) -> dict:
    """The predictive moved so that its mean is b + w·(m − b): the mean, the quantiles and the draws
    (``MOVED``) shift by (w − 1)·(m − b), the std and everything else stay. ``weight`` broadcasts against the
    mean (per band: shape (C, 1) for pixels, (C, 1, 1) for maps)."""
    shift = (weight - 1) * (maps["mean"] - bicubic)
    return {name: value + shift if name in MOVED else value for name, value in maps.items()}


def stretches(pixels: dict, weight: list[float] | None = None) -> torch.Tensor:
    """The stretch of each pixel (C, N) about the mean moved toward bicubic by ``weight`` (kept as it is
    without one)."""
    if weight is not None:
        pixels = toward_bicubic(pixels, pixels["bicubic"], torch.tensor(weight, dtype=torch.float32)[:, None])
    return pixel_stretches(pixels["truth"], pixels["mean"], pixels["q05"], pixels["q95"])


def band_stretch(stretches: torch.Tensor) -> list[float]:
    """The factor per band that makes the interval hold ``LEVEL`` of the pixels: the quantile of their stretches."""
    return [float(np.quantile(band.numpy(), LEVEL)) for band in stretches]
