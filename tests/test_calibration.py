"""The scene's own check one octave down (evaluation.calibration): the weight of the mean's detail over
bicubic that fits the truth best, the stretch that makes an interval hold the truth, both measured on tiles
one octave down and applied to the blended maps."""

import math

import numpy as np
import pytest
import torch
from test_scene_superres import BANDS, local_draws, smooth_scene

from evaluation.calibration import (
    LEVEL,
    band_stretch,
    pixel_stretches,
    residual_weight,
    stretches,
    tile_pixels,
    toward_bicubic,
)
from evaluation.mixture import PixelMixture
from evaluation.tiles import super_resolve_scene

Z90 = 1.6448536269514722  # the standard normal's 95 % quantile: N(0, 1)'s central 90 % interval is ±Z90


def test_the_stretch_is_the_least_factor_that_holds_the_truth():
    mean, low, high = torch.zeros(4), torch.full((4,), -1.0), torch.full((4,), 2.0)
    truth = torch.tensor([3.0, -0.5, 0.0, 2.0])
    t = pixel_stretches(truth, mean, low, high)
    assert torch.equal(t, torch.tensor([1.5, 0.5, 0.0, 1.0]))
    stretched_low, stretched_high = mean + t * (low - mean), mean + t * (high - mean)
    assert torch.all((stretched_low <= truth) & (truth <= stretched_high))


@pytest.mark.parametrize(("detail", "weight"), [(2.0, 0.5), (1.0, 1.0), (0.5, 1.0), (-1.0, 0.0), (0.0, 1.0)])
def test_the_residual_weight_is_the_least_squares_share_of_the_mean_s_detail(detail, weight):
    """A mean whose detail over bicubic is k times the truth's: w = 1/k fits exactly; a timid mean (k < 1)
    keeps its detail (w is at most 1), one that is wrong (k < 0) falls back to bicubic, and a mean that is
    bicubic has nothing to weigh."""
    generator = torch.Generator().manual_seed(3)
    bicubic, truth_detail = torch.rand(BANDS, 500, generator=generator), torch.randn(BANDS, 500, generator=generator)
    pixels = {"truth": bicubic + truth_detail, "bicubic": bicubic, "mean": bicubic + detail * truth_detail}
    assert residual_weight(pixels) == pytest.approx([weight] * BANDS, rel=1e-6)


def test_the_predictive_moves_with_its_mean_toward_bicubic():
    generator = torch.Generator().manual_seed(4)
    maps = {name: torch.randn(BANDS, 6, 6, generator=generator) for name in ("mean", "std", "q05", "q95")}
    maps["samples"] = torch.randn(3, BANDS, 6, 6, generator=generator)
    bicubic, weight = torch.randn(BANDS, 6, 6, generator=generator), torch.tensor([0.0, 0.5, 1.0])[:, None, None]
    moved = toward_bicubic(maps, bicubic, weight)
    torch.testing.assert_close(moved["mean"], bicubic + weight * (maps["mean"] - bicubic))
    assert torch.equal(moved["std"], maps["std"])
    for name in ("q05", "q95", "samples"):
        torch.testing.assert_close(moved[name] - moved["mean"], maps[name] - maps["mean"])


def constant_draws(sigma: float):
    """Every pixel's predictive N(0, σ²), whatever the tile."""
    def draw(tiles, k):
        shape = (k, tiles.shape[0], tiles.shape[1], 2 * tiles.shape[2], 2 * tiles.shape[3])
        means = torch.zeros(shape)
        return means, means, PixelMixture(means, torch.full(shape, sigma))
    return draw


@pytest.mark.parametrize("too_wide", [0.5, 1.0, 2.0])
def test_the_band_stretch_is_how_far_the_interval_is_off(too_wide):
    """Truth N(0, (kσ)²) against a predictive N(0, σ²): the interval ±Z90·σ must be stretched by k to hold
    90 %. The 0.9 quantile of N stretches k|Z|/Z90 has a standard error k·√(0.09/N)/(2φ(Z90)·Z90), 0.35 % of
    k for N = 65 536; the tolerance is 4 of them."""
    sigma, k = 0.1, 1 / too_wide
    truth = k * sigma * torch.randn(BANDS, 256, 256, generator=torch.Generator().manual_seed(0))
    tiles = tile_pixels(constant_draws(sigma), truth, None, 2, (8, 8), 0, 256, 2, np.random.default_rng(0))
    pixels = stretches(tiles)
    assert pixels.shape == (BANDS, 256 * 16 * 16)
    density = 2 * math.exp(-Z90**2 / 2) / math.sqrt(2 * math.pi)
    error = k * math.sqrt(LEVEL * (1 - LEVEL) / pixels.shape[1]) / (density * Z90)
    assert band_stretch(pixels) == pytest.approx([k] * BANDS, abs=4 * error)


def test_tiles_with_a_missing_pixel_are_left_out_and_the_ring_is_not_scored():
    truth = torch.randn(BANDS, 64, 64, generator=torch.Generator().manual_seed(1))
    valid = torch.ones(64, 64, dtype=torch.bool)
    valid[:, 32:] = False  # the right half missing: only tiles (16 HR pixels wide) wholly in the left half count
    generator = np.random.default_rng(2)
    pixels = tile_pixels(constant_draws(1.0), truth, valid, 2, (8, 8), 4, 200, 2, np.random.default_rng(2))
    cols = generator.integers(0, 32 - 8 + 1, 200)  # the draws tile_pixels made: rows first, then columns
    cols = generator.integers(0, 32 - 8 + 1, 200)
    whole = int((cols <= 8).sum())  # a tile starting at LR column c covers HR columns 2c … 2c + 15
    for name in ("truth", "mean", "q05", "q95", "bicubic"):
        assert pixels[name].shape == (BANDS, whole * 8 * 8)  # 16 − 2·4 HR pixels inside the ring, each way


def test_the_stretch_widens_the_maps_about_their_mean(tmp_path):
    stretch = [0.5, 1.0, 2.0]
    valid = torch.ones(24, 24, dtype=torch.bool)
    blend = super_resolve_scene(local_draws(), smooth_scene(24, 24), valid, 2, (8, 8), 2, 8, 2, 8, 2**26, tmp_path)
    plain, wide = blend.strip(0, blend.shape[1]), blend.strip(0, blend.shape[1], stretch)
    factor = np.asarray(stretch)[:, None, None]
    np.testing.assert_array_equal(wide["mean"], plain["mean"])
    np.testing.assert_allclose(wide["std"], factor * plain["std"], rtol=1e-12)
    for name in ("q05", "q95", "samples"):
        np.testing.assert_allclose(wide[name] - wide["mean"], factor * (plain[name] - plain["mean"]), atol=1e-12)


def test_superresolve_moves_the_mean_and_widens_the_maps_by_the_scene_s_own_check(tmp_path):
    """A checkpoint carrying an octave ratio of 2: the mean is bicubic + w·(the model's mean − bicubic), with
    the weights found one octave down, and the maps' widths about it are 2 × the stretch measured there, per
    band; --no-calibration gives the model's own mean (the check draws on a forked RNG) and maps."""
    import json

    from test_scene_superres import lr_values, saved_run

    from data.downscale import upsample
    from experiment.scene import superresolve
    from training.checkpoint import load_checkpoint

    path = saved_run(tmp_path)
    torch.save({**load_checkpoint(path), "calibration": {"octave_ratio": [2.0] * BANDS}}, path)
    lr = lr_values(40, 44)
    np.save(tmp_path / "scene.npy", lr)
    for out, extra in (("calibrated", []), ("plain", ["--no-calibration"])):
        assert superresolve([str(path), str(tmp_path / "scene.npy"), "--samples", "4", "--out", str(tmp_path / out),
                             *extra]) == 0
    calibrated, plain = ({name: np.load(tmp_path / out / f"{name}.npy") for name in ("mean", "std", "q05", "q95")}
                         for out in ("calibrated", "plain"))
    summary = json.loads((tmp_path / "calibrated" / "superres.json").read_text())["calibration"]
    assert summary["per_band"] == pytest.approx([2 * t for t in summary["one_octave_down"]])
    assert all(0.0 <= w <= 1.0 for w in summary["residual_weight"])
    weight, factor = (np.asarray(summary[key])[:, None, None] for key in ("residual_weight", "per_band"))
    bicubic = upsample(torch.as_tensor(lr, dtype=torch.float64)[None], 2, "bicubic", clamp=False)[0].numpy()
    np.testing.assert_allclose(calibrated["mean"], bicubic + weight * (plain["mean"] - bicubic), atol=1e-3)
    np.testing.assert_allclose(calibrated["std"], factor * plain["std"], rtol=1e-4)
    for name in ("q05", "q95"):
        np.testing.assert_allclose(calibrated[name] - calibrated["mean"], factor * (plain[name] - plain["mean"]),
                                   rtol=1e-4, atol=1e-3)
    assert json.loads((tmp_path / "plain" / "superres.json").read_text())["calibration"] is None


def test_the_octave_ratio_is_the_model_level_stretch_over_the_one_an_octave_down(monkeypatch):
    """White noise N(0, σ²) against a predictive N(0, σ²) at every level, its mean kept where it is (w = 1:
    the weight is tested above): at the model's level the stretch is 1,
    one octave down the truth is a 2×2 mean, of std σ/2, so the stretch is ½ and the ratio 2. The random tiles
    overlap: one octave down their 2 × 32 768 pixels per band are about 2 × 10 000 distinct ones, whose 0.9
    quantile has a standard error of √(0.09/20 000)/(2φ(Z90)·Z90) ≈ 0.65 %; each stretch is held within 4 of
    them, the ratio within 4·√2."""
    import evaluation.calibration
    from experiment.calibration import TILES, octave_ratio
    from experiment.units import Units

    monkeypatch.setattr(evaluation.calibration, "residual_weight", lambda pixels: [1.0] * BANDS)

    sigma = 0.1
    images = [sigma * np.random.default_rng(seed).standard_normal((BANDS, 256, 256)) for seed in (0, 1)]
    units = Units({"low": [0.0] * BANDS, "span": [1.0] * BANDS}, "cpu")
    measured = octave_ratio(constant_draws(sigma), images, units, 2, (8, 8), 0, 2, "area")
    assert measured["scenes"] == 2 and measured["tiles_per_scene"] == TILES
    assert measured["stretch"] == pytest.approx([1.0] * BANDS, rel=0.026)
    assert measured["stretch_one_octave_down"] == pytest.approx([0.5] * BANDS, rel=0.026)
    assert measured["octave_ratio"] == pytest.approx([2.0] * BANDS, rel=0.037)
