"""Super-resolution of a scene of any size (SPEC §7, tile by tile).

The model takes LR images of one size (a tile). A scene is cut into LR tiles of that size that overlap
their neighbours by at least ``overlap`` pixels; each tile's S draws of x given y are summarised per
HR pixel (mean of the decoder's means, second moment, 5 % and 95 % quantiles, those of the mixture
of the S components p(x | y, zₛ): ``summarise``) and added into the scene
with the weight of a window that is 1 in the tile's middle and falls smoothly towards its edges
(``taper``), where a conv network sees zero padding and no context. Per HR pixel, with w_t the
windows of the tiles t covering it (W = Σ w_t):

    mean = Σ w_t m_t / W
    std² = Σ w_t E_t[x²] / W − mean²                 the variance of the windows' mixture
    q    = Σ w_t q_t / W                             (each q_t estimates the same quantile)
    draw = mean + Σ w_t (a_t − m_t) / √(Σ w_t²)      a_t: the tile's draw of that index

The last blends independent draws without shrinking their spread: where the tiles agree on the
variance σ², Σ w_t (a_t − m_t) / √(Σ w_t²) has variance σ² whatever the weights. The sums live in
memory maps, so a scene costs disk, not memory; the tiles go through the networks in batches sized
from a memory budget (``batch_sizes``), all S draws of a tile in one pass where they fit.
"""

import math
from pathlib import Path

import numpy as np
import torch

from evaluation.mixture import PixelMixture

QUANTILES = {"q05": 0.05, "q95": 0.95}
STATISTICS = ("mean", "second", *QUANTILES)
LIVE_MAPS_PER_CHANNEL = 6  # activation maps per hidden channel alive at once in a pass (a generous estimate)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of ``tile`` pixels covering ``length`` pixels, evenly spread, neighbours sharing
    at least ``overlap`` pixels, the first at 0 and the last flush with the end."""
    if length < tile:
        raise ValueError(f"a side of {length} pixels is smaller than a tile of {tile}")
    if length == tile:
        return [0]
    gaps = math.ceil((length - tile) / max(1, tile - overlap))
    return [round(i * (length - tile) / gaps) for i in range(gaps + 1)]


def taper(size: int, ramp: int) -> torch.Tensor:
    """A 1-D window of ``size`` pixels: 1 in the middle, rising as sin² over ``ramp`` pixels at each
    end (positive everywhere, so a scene border covered by one tile keeps its values)."""
    position = torch.arange(size, dtype=torch.float64) + 0.5
    edge = torch.minimum(position, size - position)
    if ramp <= 0:
        return torch.ones(size, dtype=torch.float64)
    return torch.sin(0.5 * math.pi * (edge / ramp).clamp(max=1.0)).pow(2)


def window(height: int, width: int, ramp: int) -> np.ndarray:
    """The 2-D window of a tile: the outer product of two ``taper``."""
    return torch.outer(taper(height, ramp), taper(width, ramp)).float().numpy()


def sorted_quantile(ordered: torch.Tensor, level: float) -> torch.Tensor:
    """The ``level`` quantile along dim 0 of draws already sorted along it, linearly interpolated
    between order statistics (as ``torch.quantile``, which refuses large inputs)."""
    position = level * (ordered.shape[0] - 1)
    low, frac = math.floor(position), position - math.floor(position)
    high = min(low + 1, ordered.shape[0] - 1)
    return ordered[low] + frac * (ordered[high] - ordered[low])


def summarise(draws: torch.Tensor, means: torch.Tensor, mixture, keep: int) -> dict:
    """Per-pixel statistics of S draws of B tiles (S, B, C, H, W): the tiles' mean (of the means of the
    p(x | y, z) the draws came from, ``predictive_components``), their second moment E[x²], the
    ``QUANTILES``, and the first ``keep`` draws' deviations from the mean. With the components
    (``evaluation.mixture.PixelMixture``) the second moment and the quantiles are those of their mixture,
    exact given the S latents; without them (a discretized likelihood), those of the draws."""
    mean = means.mean(0)
    if mixture is not None:
        stats = {"mean": mean, "second": mixture.second_moment}
        stats.update({name: mixture.quantile(level) for name, level in QUANTILES.items()})
    else:
        variance = draws.var(0) if draws.shape[0] > 1 else torch.zeros_like(mean)
        ordered = draws.sort(0).values
        stats = {"mean": mean, "second": variance + mean.pow(2)}
        stats.update({name: sorted_quantile(ordered, level) for name, level in QUANTILES.items()})
    stats["deviations"] = (draws[:keep] - mean).transpose(0, 1)
    return stats


class Blend:
    """The windowed sums of the tiles' statistics over the HR scene (C, H, W), with Σ w and Σ w²: .npy
    memory maps in ``folder``, read back in strips of rows (``strip``)."""

    def __init__(self, folder: Path, bands: int, height: int, width: int, keep: int):
        def new(name, shape):
            return np.lib.format.open_memmap(Path(folder) / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)

        self.sums = {name: new(name, (bands, height, width)) for name in STATISTICS}
        self.deviations = new("deviations", (keep, bands, height, width)) if keep else None
        self.weight, self.weight2 = new("weight", (height, width)), new("weight2", (height, width))
        self.shape, self.keep, self.tiles = (bands, height, width), keep, 0

    def add(self, row: int, col: int, w: np.ndarray, stats: dict) -> None:
        """Add one tile's statistics (numpy, (C, T, T)), weighted by the window ``w`` (T, T), at HR (row, col)."""
        rows, cols = slice(row, row + w.shape[0]), slice(col, col + w.shape[1])
        for name in STATISTICS:
            self.sums[name][:, rows, cols] += w * stats[name]
        if self.keep:
            self.deviations[:, :, rows, cols] += w * stats["deviations"]
        self.weight[rows, cols] += w
        self.weight2[rows, cols] += w * w
        self.tiles += 1

    def strip(self, start: int, stop: int, stretch=None) -> dict:
        """The finished maps of rows ``start`` … ``stop`` − 1: mean, std, q05, q95 (C, rows, W) and the
        kept draws (N, C, rows, W); NaN where no tile reached. ``stretch`` (C,) widens each band's
        predictive about its mean by that factor (``evaluation.calibration``): std and the quantiles'
        and draws' distances from the mean."""
        weight = self.weight[start:stop].astype(np.float64)
        factor = np.ones((self.shape[0], 1, 1)) if stretch is None else np.asarray(stretch)[:, None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(weight > 0, 1.0 / weight, np.nan)
            mean = self.sums["mean"][:, start:stop] * share
            variance = np.maximum(self.sums["second"][:, start:stop] * share - mean ** 2, 0.0)
            maps = {"mean": mean, "std": factor * np.sqrt(variance)}
            maps.update({name: mean + factor * (self.sums[name][:, start:stop] * share - mean) for name in QUANTILES})
            if self.keep:
                spread = factor / np.sqrt(self.weight2[start:stop].astype(np.float64))
                maps["samples"] = mean + self.deviations[:, :, start:stop] * spread
        return maps


def batch_sizes(samples: int, bands: int, tile_pixels: int, channels: int, memory_bytes: int) -> tuple[int, int]:
    """(tiles per batch, draws per pass) that keep a batch under ``memory_bytes``: each draw of a tile
    holds its draw, its mean, its std and a working copy (4 C floats per HR pixel) and, while it goes
    through the networks, about ``LIVE_MAPS_PER_CHANNEL`` maps of each hidden channel. All S draws of
    a tile go in one pass when they fit, else as many as fit."""
    kept = 4 * tile_pixels * 4 * bands
    passing = 4 * tile_pixels * LIVE_MAPS_PER_CHANNEL * max(channels, bands)
    tiles = max(1, memory_bytes // (samples * (kept + passing)))
    if samples * (kept + passing) <= memory_bytes:
        return tiles, samples
    return tiles, max(1, (memory_bytes - samples * kept) // passing)


def fill_missing(y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """y (C, h, w) with each band's missing pixels set to the mean of its valid ones, so the networks
    see plausible values there (the outputs above them are masked anyway)."""
    if bool(valid.all()):
        return y
    known = torch.where(valid, y, torch.zeros((), dtype=y.dtype, device=y.device))  # NaN · 0 would be NaN
    fill = known.sum((1, 2)) / valid.sum().clamp(min=1)
    return torch.where(valid, y, fill[:, None, None])


def super_resolve_scene(draw, y: torch.Tensor, valid: torch.Tensor, scale: int, tile: tuple[int, int], overlap: int,
                        samples: int, keep: int, channels: int, memory_bytes: int, folder: Path,
                        progress=None) -> Blend:
    """Super-resolve the LR scene ``y`` (C, h, w, normalized; ``valid`` (h, w) marks its pixels with data)
    tile by tile: ``draw(y_tiles, k)`` gives k draws of x for a batch of LR tiles (B, C, *tile), the means
    and the standard deviations (or None) of the Gaussians they came from, (k, B, C, s·tile_h, s·tile_w)
    each (``predictive_components``). Tiles with no valid pixel are skipped.
    Returns the ``Blend`` in ``folder``; ``progress(done, total)`` counts tiles."""
    bands, height, width = y.shape
    (th, tw), y = tile, fill_missing(y, valid)
    corners = [(r, c) for r in tile_starts(height, th, overlap) for c in tile_starts(width, tw, overlap)
               if bool(valid[r:r + th, c:c + tw].any())]
    w = window(scale * th, scale * tw, scale * overlap)
    blend = Blend(folder, bands, scale * height, scale * width, keep)
    per_batch, per_pass = batch_sizes(samples, bands, scale * scale * th * tw, channels, memory_bytes)
    for first in range(0, len(corners), per_batch):
        batch = corners[first:first + per_batch]
        tiles = torch.stack([y[:, r:r + th, c:c + tw] for r, c in batch])
        passes = [draw(tiles, min(per_pass, samples - done)) for done in range(0, samples, per_pass)]
        draws, means = (torch.cat([part[i] for part in passes]) for i in (0, 1))
        mixture = None if passes[0][2] is None else PixelMixture.concatenate([part[2] for part in passes])
        stats = {name: value.float().cpu().numpy() for name, value in summarise(draws, means, mixture, keep).items()}
        for i, (r, c) in enumerate(batch):
            blend.add(scale * r, scale * c, w, {name: value[i] for name, value in stats.items()})
        if progress is not None:
            progress(first + len(batch), len(corners))
    return blend
