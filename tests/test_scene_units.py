"""The scene command's units: an image reaches the model's units through --scale/--offset or a GeoTIFF's own
scale and offset, an image in other units is refused, and pixels outside the training range are reported."""

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from test_scene_superres import BANDS, lr_values, saved_run

from experiment.scene import superresolve

REFLECTANCE = {"low": [0.0] * BANDS, "span": [10_000.0] * BANDS, "integer": True, "units": "reflectance",
               "observed": [[0.0] * BANDS, [1000.0] * BANDS]}


@pytest.fixture(scope="module")
def reflectance_model(tmp_path_factory):
    return saved_run(tmp_path_factory.mktemp("run"), normalization=REFLECTANCE)


def maps(folder):
    return {name: np.load(folder / f"{name}.npy") for name in ("mean", "std", "q05", "q95")}


def run(checkpoint, image, out, *flags):
    return superresolve([str(checkpoint), str(image), "--samples", "3", "--seed", "4", "--out", str(out), *flags])


def test_reflectance_floats_are_refused_and_taken_with_scale(reflectance_model, tmp_path, capsys):
    dn = lr_values()
    np.save(tmp_path / "dn.npy", dn)
    np.save(tmp_path / "reflectance.npy", dn / 10_000.0)
    assert run(reflectance_model, tmp_path / "reflectance.npy", tmp_path / "refused") == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "reflectance × 10000" in error and "--scale" in error
    assert not (tmp_path / "refused").exists()
    assert run(reflectance_model, tmp_path / "dn.npy", tmp_path / "dn") == 0
    assert run(reflectance_model, tmp_path / "reflectance.npy", tmp_path / "scaled", "--scale", "10000") == 0
    for name, image in maps(tmp_path / "scaled").items():
        np.testing.assert_allclose(image, maps(tmp_path / "dn")[name], atol=1e-2, err_msg=name)
    summary = json.loads((tmp_path / "scaled" / "superres.json").read_text())
    assert summary["input_scaling"] == {"scale": 10_000.0, "offset": 0.0, "from": "--scale/--offset"}


def geotiff(path, values, scale, offset):
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[1], width=values.shape[2],
                       count=values.shape[0], dtype=values.dtype.name, crs="EPSG:32633",
                       transform=Affine.translation(350000.0, 6160000.0) @ Affine.scale(10.0, -10.0)) as out:
        out.write(values)
        out.scales, out.offsets = (scale,) * values.shape[0], (offset,) * values.shape[0]


def test_a_geotiffs_stated_scale_and_offset_reach_the_models_units(reflectance_model, tmp_path):
    """An L2A-like product of baseline 04.00: digital numbers + 1000, stated reflectance = 0.0001·v − 0.1, gives
    the maps of the same scene without the offset; --offset -1000 does the same for a file that states nothing."""
    dn = lr_values()
    np.save(tmp_path / "dn.npy", dn)
    geotiff(tmp_path / "l2a.tif", dn + 1000, 1e-4, -0.1)
    geotiff(tmp_path / "plain.tif", dn + 1000, 1.0, 0.0)
    assert run(reflectance_model, tmp_path / "dn.npy", tmp_path / "dn") == 0
    assert run(reflectance_model, tmp_path / "l2a.tif", tmp_path / "l2a") == 0
    assert run(reflectance_model, tmp_path / "plain.tif", tmp_path / "plain", "--offset", "-1000") == 0
    for folder in ("l2a", "plain"):
        for name in ("mean", "std", "q05", "q95"):
            with rasterio.open(tmp_path / folder / f"{name}.tif") as source:
                np.testing.assert_allclose(source.read(), maps(tmp_path / "dn")[name], atol=1e-2)
    stated = json.loads((tmp_path / "l2a" / "superres.json").read_text())["input_scaling"]
    assert stated["scale"] == pytest.approx(1.0) and stated["offset"] == pytest.approx(-1000.0)


def test_pixels_outside_the_training_range_are_counted_and_warned_about(reflectance_model, tmp_path, capsys):
    bright = lr_values().astype(np.float32)
    bright[0, :10] += 900  # band 0, half the rows, above the training maximum 1000 where they exceed 100
    np.save(tmp_path / "bright.npy", bright)
    assert run(reflectance_model, tmp_path / "bright.npy", tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "superres.json").read_text())["out_of_range"]
    expected = [float((band > 1000).mean()) for band in bright]
    assert report["share_per_band"] == pytest.approx(expected) and expected[0] > 0.3 and expected[1] == 0
    assert report["warned"] == [True, False, False]
    assert "outside the range the model was trained on" in capsys.readouterr().err
    mean = np.load(tmp_path / "out" / "mean.npy")
    assert mean[0, :20].mean() > 1000  # the bright rows are super-resolved bright, not clipped to the training range


def test_an_unknown_model_name_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "dn.npy", lr_values())
    assert superresolve(["sentinel2-rgb", str(tmp_path / "dn.npy"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "neither a bundled model (sentinel2-rgbn)" in error
