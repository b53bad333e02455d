"""A whole scene super-resolved tile by tile: tiles that cover it, blending that agrees with processing it
whole and leaves no seam, draws that keep their spread, GeoTIFF in and out with its georeferencing, the
same output for the same seed, and bad input refused before anything is written."""

import itertools
import math

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from conftest import CONFIG

from data import upsample
from evaluation.mixture import PixelMixture
from evaluation.tiles import batch_sizes, taper, tile_starts
from evaluation.tiles import super_resolve_scene as tiled
from experiment.config import RunConfig
from experiment.scene import superresolve
from training.build import build_model_and_guide
from training.checkpoint import save_checkpoint

BANDS, TILE = 3, 8  # LR tiles of 8×8 → HR 16×16


def smooth_scene(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth LR scene in [0.2, 0.8]: a few long waves per band."""
    g = torch.Generator().manual_seed(seed)
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                                indexing="ij")
    waves = [torch.sin(rows / (5 + 10 * torch.rand(1, generator=g)) + cols / (7 + 10 * torch.rand(1, generator=g)))
             for _ in range(BANDS)]
    return 0.5 + 0.3 * torch.stack(waves)


def local_draws(sigma: float = 0.05, tile_offset: float = 0.0, mixture: bool = True):
    """A stand-in for the model that a whole scene can also go through: the mean of x is bicubic(y)
    (a local function, with edge effects at a tile's border as a conv network has), a draw adds
    N(0, σ²) per pixel, and ``tile_offset`` shifts each tile's mean by its own N(0, offset²) (as a
    latent shared by a tile would); the components' σ are given with ``mixture``, else withheld (as
    for a discretized likelihood)."""
    def draw(tiles, k):
        means = upsample(tiles, 2, "bicubic").expand(k, *tiles.shape[:2], 2 * tiles.shape[2], 2 * tiles.shape[3])
        means = means + tile_offset * torch.randn(1, len(tiles), 1, 1, 1)
        components = PixelMixture(means, torch.full_like(means, sigma)) if mixture else None
        return means + sigma * torch.randn(means.shape), means, components
    return draw


def blended(draw, y, tmp_path, samples=64, keep=0, overlap=2, tile=(TILE, TILE)):
    valid = torch.ones(y.shape[1:], dtype=torch.bool)
    blend = tiled(draw, y, valid, 2, tile, overlap, samples, keep, 8, 2**26, tmp_path)
    return blend.strip(0, blend.shape[1])


@pytest.mark.parametrize("length,tile,overlap", [(8, 8, 2), (9, 8, 2), (37, 8, 2), (50, 16, 4), (64, 16, 0)])
def test_tiles_cover_the_side_sharing_at_least_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] == length - tile
    assert all(0 < b - a <= tile - overlap for a, b in itertools.pairwise(starts))


def test_the_window_is_one_inside_and_positive_at_the_edges():
    w = taper(32, 8)
    assert torch.all(w > 0) and torch.all(w[8:24] == 1)
    assert torch.allclose(w, w.flip(0)) and torch.all(w[:8].diff() > 0)


def test_tiles_agree_with_the_whole_scene_within_monte_carlo_error(tmp_path):
    """Through the draws (as for a discretized likelihood): the whole scene's N(bicubic(y), σ²) within the
    draws' Monte-Carlo error."""
    y, sigma, samples = smooth_scene(26, 35), 0.05, 64
    maps = blended(local_draws(sigma, mixture=False), y, tmp_path, samples)
    whole_mean = upsample(y, 2, "bicubic")
    inner = (slice(None), slice(4, -4), slice(4, -4))
    # the means are exact: only the tiles' edge effects, damped by the window, remain
    assert np.abs(maps["mean"][inner] - whole_mean[inner].numpy()).max() < 2e-3
    # the variance, estimated from 64 draws: relative SE √(2/63) per pixel, pixels independent
    ratio = (maps["std"][inner] ** 2 / sigma ** 2).mean()
    pixels = maps["std"][inner].size
    assert abs(ratio - 1) < 4 * math.sqrt(2 / (samples - 1)) / math.sqrt(pixels / 4)
    # the 5 % and 95 % quantiles of N(m, σ²): m ∓ 1.645 σ, within 0.15 σ on average
    for name, z in (("q05", -1.6449), ("q95", 1.6449)):
        assert abs(((maps[name] - maps["mean"])[inner] / sigma).mean() - z) < 0.15


def test_the_mixture_of_the_components_gives_the_std_and_quantiles_exactly(tmp_path):
    """With the components' σ, two draws per tile give the std and the quantiles of N(bicubic(y), σ²) to
    the bisection's precision."""
    y, sigma = smooth_scene(26, 35), 0.05
    maps = blended(local_draws(sigma), y, tmp_path, samples=2)
    # the blended variance also holds the tiles' small disagreement where bicubic meets their edges
    assert np.allclose(maps["std"], sigma, atol=5e-4) and np.median(np.abs(maps["std"] - sigma)) < 1e-6
    for name, z in (("q05", -1.6448536), ("q95", 1.6448536)):
        assert np.allclose(maps[name], maps["mean"] + z * sigma, atol=1e-5)


def test_blended_draws_keep_their_spread_where_tiles_overlap(tmp_path):
    y, sigma = smooth_scene(20, 20), 0.05
    maps = blended(local_draws(sigma), y, tmp_path, samples=8, keep=8)
    standardized = (maps["samples"] - maps["mean"]) / sigma  # (8, C, 40, 40)
    starts = tile_starts(20, TILE, 2)
    overlap_rows = sorted({2 * s + i for s in starts[1:] for i in range(4)})  # the 2 LR rows shared, at HR
    shared = standardized[:, :, overlap_rows]
    n = shared.size
    # a plain weighted average of independent draws would shrink this variance by up to half
    assert abs(shared.var() - 1) < 5 * math.sqrt(2 / n)  # the SE of a variance of n independent normals


def column_jumps(image: np.ndarray) -> np.ndarray:
    """|x[:, :, j+1] − x[:, :, j]|, the largest over bands and rows, for each j."""
    return np.abs(np.diff(image, axis=-1)).max(axis=(0, 1))


@pytest.mark.parametrize("overlap", [0, 2])
def test_no_seam_on_a_smooth_ramp(tmp_path, overlap):
    """A horizontal ramp through a stand-in whose tiles each shift their mean: with the window, the jump
    across a tile border is no larger than the largest inside a tile; without overlap it is (the test
    has power)."""
    torch.manual_seed(0)
    y = torch.linspace(0.2, 0.8, 42).expand(BANDS, 12, 42).clone()
    maps = blended(local_draws(0.01, tile_offset=0.02), y, tmp_path, samples=4, overlap=overlap)
    jumps = column_jumps(maps["mean"])
    borders = sorted({2 * s - 1 for s in tile_starts(42, TILE, overlap)[1:]} |
                     {2 * (s + TILE) - 1 for s in tile_starts(42, TILE, overlap)[:-1]})
    inside = np.delete(jumps, borders)
    if overlap:
        assert jumps[borders].max() <= inside.max()
    else:
        assert jumps[borders].max() > 2 * inside.max()


def test_batches_fit_the_memory_budget():
    for budget in (2**20, 2**24, 2**28):
        tiles, draws = batch_sizes(100, 4, 32 * 32, 32, budget)
        per_draw = 4 * 32 * 32 * (4 * 4 + 6 * 32)
        assert tiles == 1 or tiles * 100 * per_draw <= budget
        assert draws == 100 or draws * per_draw <= budget
    assert batch_sizes(100, 4, 32 * 32, 32, 2**20)[1] < 100  # a small budget splits a tile's draws


def saved_run(folder, **changes):
    """An (untrained) conv SRVAE for 3 bands of 16×16, integer data of 0…999, saved as a run saves it."""
    config = RunConfig(**{**CONFIG, "arch": "conv", "noise": "pixel", "scale_network": True, "channels": 8,
                          "dataset": "folder", "crop": 16, "image_shape": [BANDS, 16, 16], "train_images": 10,
                          "normalization": {"low": [0.0] * BANDS, "span": [1000.0] * BANDS, "integer": True},
                          "sr_proposals": 0, "sr_fit_steps": 0, **changes})
    torch.manual_seed(0)
    model, guide = build_model_and_guide(config, config.image_shape)
    save_checkpoint(folder / "checkpoint.pt", model, guide, config.to_dict())
    return folder / "checkpoint.pt"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return saved_run(tmp_path_factory.mktemp("run"))


def geotiff(path, values: np.ndarray, nodata=None, descriptions=("B04", "B03", "B02")):
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[1], width=values.shape[2],
                       count=values.shape[0], dtype=values.dtype.name, crs="EPSG:32633",
                       transform=Affine.translation(350000.0, 6160000.0) @ Affine.scale(10.0, -10.0),
                       nodata=nodata) as out:
        out.write(values)
        for band, text in enumerate(descriptions, start=1):
            out.set_band_description(band, text)


def lr_values(height=20, width=26) -> np.ndarray:
    return np.round(1000 * smooth_scene(height, width).numpy()).astype(np.uint16)


def test_a_geotiff_gives_geotiffs_on_the_same_grid_at_half_the_pixel_size(checkpoint, tmp_path):
    values = lr_values()
    values[:, 3:5, 6:9] = 0
    geotiff(tmp_path / "scene.tif", values, nodata=0)
    assert superresolve([str(checkpoint), str(tmp_path / "scene.tif"), "--samples", "4", "--keep-samples", "2",
                         "--out", str(tmp_path / "out")]) == 0
    for name, count in (("mean", 3), ("std", 3), ("q05", 3), ("q95", 3), ("samples", 6)):
        with rasterio.open(tmp_path / "out" / f"{name}.tif") as out:
            assert out.crs.to_epsg() == 32633 and out.count == count and out.shape == (40, 52)
            assert (out.transform.c, out.transform.f) == (350000.0, 6160000.0)
            assert (out.transform.a, out.transform.e) == (5.0, -5.0)
            assert out.descriptions[0].endswith("B04")
            image = out.read()
        missing = np.isnan(image).all(0)
        assert missing[6:10, 12:18].all() and missing.sum() == 4 * 6  # nodata in, nodata out
    with rasterio.open(tmp_path / "out" / "mean.tif") as out:
        mean = out.read()
    assert np.nanmin(mean) > 0 and np.nanmax(mean) < 1000  # in the data's units
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["mean.tif", "std.tif", "q05.tif", "q95.tif", "samples.tif", "quicklook.png", "superres.json"])


@pytest.mark.parametrize("missing", ["nan", "nodata"])
def test_a_missing_block_blanks_only_its_own_output_pixels(checkpoint, tmp_path, missing):
    """NaN (or --nodata) pixels in an image make exactly their own s×s output pixels missing (a margin of 0):
    the networks see the band's mean there, so nothing else turns NaN."""
    values = lr_values(24, 30).astype(np.float32)
    values[:, 5:15, 10:25] = np.nan if missing == "nan" else 0  # 150 LR pixels
    np.save(tmp_path / "scene.npy", values)
    flags = ["--nodata", "0"] if missing == "nodata" else []
    assert superresolve([str(checkpoint), str(tmp_path / "scene.npy"), "--samples", "3", *flags,
                         "--out", str(tmp_path / "out")]) == 0
    for name in ("mean", "std", "q05", "q95"):
        image = np.load(tmp_path / "out" / f"{name}.npy")
        gone = np.isnan(image).any(0)
        assert gone[10:30, 20:50].all() and gone.sum() == 4 * 150, name


def test_the_same_seed_gives_the_same_output(checkpoint, tmp_path):
    np.save(tmp_path / "scene.npy", lr_values())
    for out in ("a", "b"):
        assert superresolve([str(checkpoint), str(tmp_path / "scene.npy"), "--samples", "3", "--seed", "7",
                             "--out", str(tmp_path / out)]) == 0
    a, b = (np.load(tmp_path / out / "std.npy") for out in ("a", "b"))
    assert a.shape == (BANDS, 40, 52) and np.array_equal(a, b)


@pytest.mark.parametrize("case", ["bands", "small", "unreadable", "exists", "all missing"])
def test_bad_input_ends_with_one_line_and_writes_nothing(checkpoint, tmp_path, capsys, case):
    image, out = tmp_path / "scene.npy", tmp_path / "out"
    np.save(image, lr_values())
    if case == "bands":
        np.save(image, lr_values()[:2])
    elif case == "small":
        np.save(image, lr_values(6, 30))
    elif case == "unreadable":
        image = tmp_path / "scene.tif"
        image.write_bytes(b"not a tiff")
    elif case == "exists":
        out.mkdir()
        (out / "mean.npy").write_bytes(b"mine")
    elif case == "all missing":
        np.save(image, np.full((BANDS, 20, 26), np.nan, dtype=np.float32))
    before = sorted(tmp_path.rglob("*"))
    assert superresolve([str(checkpoint), str(image), "--samples", "2", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("superresolve.py: error:") and "\n" not in error
    assert sorted(tmp_path.rglob("*")) == before
    if case == "exists":
        assert superresolve([str(checkpoint), str(image), "--samples", "2", "--out", str(out), "--overwrite"]) == 0
        assert np.load(out / "mean.npy").shape == (BANDS, 40, 52)


def test_an_interrupted_scene_leaves_nothing_behind(checkpoint, tmp_path, monkeypatch):
    import evaluation.superres

    real, calls = evaluation.superres.predictive_components, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation.superres, "predictive_components", interrupted)
    np.save(tmp_path / "scene.npy", lr_values())
    status = superresolve([str(checkpoint), str(tmp_path / "scene.npy"), "--samples", "2", "--memory-mb", "1",
                           "--out", str(tmp_path / "out")])
    assert status == 130 and len(calls) == 2
    assert not (tmp_path / "out").exists()


def test_a_scene_stopped_by_sigterm_leaves_nothing_behind_and_says_so(checkpoint, tmp_path, monkeypatch, capsys):
    """A scheduler's SIGTERM midway takes Ctrl-C's clean-up path (no scratch folder, no map) and status 143."""
    import os
    import signal

    import evaluation.superres

    real, calls = evaluation.superres.predictive_components, []

    def terminated(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation.superres, "predictive_components", terminated)
    np.save(tmp_path / "scene.npy", lr_values())
    handler = signal.getsignal(signal.SIGTERM)
    status = superresolve([str(checkpoint), str(tmp_path / "scene.npy"), "--samples", "2", "--memory-mb", "1",
                           "--out", str(tmp_path / "out")])
    assert status == 143 and len(calls) == 2
    assert not (tmp_path / "out").exists()
    assert capsys.readouterr().err.strip().splitlines()[-1] == "superresolve.py: stopped by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is handler  # the handler is the process's again


def test_generalized_normal_pixels_take_their_std_and_quantiles_from_their_mixture(tmp_path):
    """With a gennorm likelihood even one draw per tile gives a std and quantiles (of its component): the 5 %
    and 95 % quantiles bracket the mean, and the std is positive (an untrained model's σ)."""
    checkpoint = saved_run(tmp_path, likelihood="gennorm")
    np.save(tmp_path / "scene.npy", lr_values(12, 14))
    for samples in ("1", "8"):
        assert superresolve([str(checkpoint), str(tmp_path / "scene.npy"), "--samples", samples,
                             "--out", str(tmp_path / samples)]) == 0
        mean, std, q05, q95 = (np.load(tmp_path / samples / f"{name}.npy") for name in ("mean", "std", "q05", "q95"))
        assert (std > 0).all() and (q05 < mean).all() and (mean < q95).all()
