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
"""

import numpy as np
import torch

from data.downscale import downscale

LEVEL = 0.90  # the interval that is calibrated: q05 … q95


def pixel_stretches(truth: torch.Tensor, mean: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The least t per pixel for which m + t·(low − m) ≤ truth ≤ m + t·(high − m) (0 where truth = m)."""
    deviation = truth - mean
    side = torch.where(deviation > 0, high - mean, low - mean)
    return torch.where(deviation == 0, torch.zeros_like(deviation), deviation / side)


def tile_stretches(draw, truth_image: torch.Tensor, valid: torch.Tensor | None, scale: int, tile: tuple[int, int],
                   ring: int, count: int, samples: int, generator: np.random.Generator, mode: str = "area",
                   batch: int = 64) -> torch.Tensor:
    """The stretches of the pixels of ``count`` random tiles, per band (C, N): the LR tiles cut from
    d(``truth_image``) (C, H, W, the model's units), super-resolved by ``draw`` (``predictive_components``'s
    signature, ``samples`` draws of each tile), compared with ``truth_image`` inside ``ring`` HR pixels of each tile's
    border (where the scene's tiles blend with their neighbours). Tiles with a missing pixel (``valid``
    False, at the truth's resolution) are left out; an empty (C, 0) when none is whole."""
    from evaluation.tiles import summarise

    lr = downscale(truth_image, scale, mode)
    (th, tw), (bands, h, w) = tile, lr.shape
    rows, cols = generator.integers(0, h - th + 1, count), generator.integers(0, w - tw + 1, count)
    corners = [(r, c) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
               if valid is None or bool(valid[scale * r:scale * (r + th), scale * c:scale * (c + tw)].all())]
    inner = (slice(None), slice(None), slice(ring, scale * th - ring), slice(ring, scale * tw - ring))
    parts = [torch.zeros(bands, 0)]
    for first in range(0, len(corners), batch):
        chosen = corners[first:first + batch]
        tiles = torch.stack([lr[:, r:r + th, c:c + tw] for r, c in chosen])
        truth = torch.stack([truth_image[:, scale * r:scale * (r + th), scale * c:scale * (c + tw)] for r, c in chosen])
        stats = summarise(*draw(tiles, samples), keep=0)
        t = pixel_stretches(*(value[inner] for value in (truth, stats["mean"], stats["q05"], stats["q95"])))
        parts.append(t.transpose(0, 1).reshape(bands, -1).float().cpu())
    return torch.cat(parts, dim=1)


def band_stretch(stretches: torch.Tensor) -> list[float]:
    """The factor per band that makes the interval hold ``LEVEL`` of the pixels: the quantile of their stretches."""
    return [float(np.quantile(band.numpy(), LEVEL)) for band in stretches]
