"""bench.scenes' pieces that decide what is measured: which files make a place, what a fold trains on, the
Wald pair of a scene, and the scores."""

import numpy as np
import pytest

import bench.scenes as scenes
from baselines.cnn import ResidualCNN, load_cnn


def test_dates_of_one_place_are_one_place_and_a_fold_leaves_them_all_out(tmp_path):
    (tmp_path / "hr").mkdir()
    for name in ("malmo", "lake_constance_20180422", "lake_constance_20181022", "dolomites"):
        np.save(tmp_path / "hr" / f"{name}.npy", np.zeros((1, 4, 4), dtype=np.uint16))
    grouped = scenes.places(tmp_path)
    assert {place: len(paths) for place, paths in grouped.items()} == {"malmo": 1, "lake_constance": 2,
                                                                        "dolomites": 1}
    data = scenes.fold_data(tmp_path, "lake_constance", tmp_path / "fold")
    assert sorted(path.name for path in (data / "hr").iterdir()) == ["dolomites.npy", "malmo.npy"]


def test_the_wald_pair_is_the_scene_and_its_area_average(tmp_path):
    x = np.arange(2 * 5 * 7, dtype=np.uint16).reshape(2, 5, 7)
    np.save(tmp_path / "scene.npy", x)
    hr, lr = scenes.wald_pair(tmp_path / "scene.npy")
    assert hr.shape == (2, 4, 6) and lr.shape == (2, 2, 3)
    assert lr[1, 1, 2] == pytest.approx(x[1, 2:4, 4:6].mean())


def test_scores_are_psnr_against_the_peak_and_rmse_in_the_datas_units():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5000, (2, 40, 40))
    error = np.stack([np.full((40, 40), 10.0), np.full((40, 40), 20.0)])
    result = scenes.scores(x, x + error, 10_000.0)
    assert result["rmse_per_band"] == pytest.approx([10.0, 20.0])
    assert result["psnr_per_band"] == pytest.approx([60.0, 20 * np.log10(500)])
    assert result["psnr"] == pytest.approx(10 * np.log10(1e8 / 250))


def test_the_saved_cnn_applies_in_its_own_units(tmp_path):
    """A CNN saved with reflectance units, untrained (x̂ = bicubic(y)), maps a scene's digital numbers to their
    bicubic upsampling in the same numbers."""
    import torch

    from data import upsample

    net = ResidualCNN(2, 2, channels=4)
    torch.save({"state": net.state_dict(), "bands": 2, "scale": 2, "channels": 4, "blocks": 1,
                "normalization": {"low": [0.0, 0.0], "span": [10_000.0, 10_000.0], "integer": True}},
               tmp_path / "cnn.pt")
    assert load_cnn(tmp_path / "cnn.pt")[1]["integer"]
    y = np.random.default_rng(1).uniform(100, 3000, (2, 6, 8))
    cnn, bicubic = scenes.cnn_and_bicubic(tmp_path / "cnn.pt", y)
    expected = upsample(torch.as_tensor(y)[None], 2, "bicubic", clamp=False)[0].numpy()
    np.testing.assert_allclose(cnn, expected, rtol=1e-4)
    np.testing.assert_allclose(bicubic, expected, rtol=1e-4)


def test_the_model_s_own_maps_are_recovered_from_the_checked_ones():
    """superresolve.py moves the mean to b + w·(m − b) and stretches the interval by t about it; undoing
    both gives back the model's own mean, and so its PSNR and the coverage of its own interval."""
    generator = np.random.default_rng(5)
    x, bicubic = generator.normal(size=(3, 40, 40)), generator.normal(size=(3, 40, 40))
    own = {"mean": x + 0.3 * generator.normal(size=x.shape)}
    own["q05"], own["q95"] = own["mean"] - 0.4, own["mean"] + 0.5
    weight, factor = np.array([0.5, 1.0, 0.25])[:, None, None], np.array([2.0, 0.5, 1.0])[:, None, None]
    checked = {"mean": bicubic + weight * (own["mean"] - bicubic)}
    checked.update({name: checked["mean"] + factor * (own[name] - own["mean"]) for name in ("q05", "q95")})
    check = {"residual_weight": weight.ravel().tolist(), "per_band": factor.ravel().tolist()}
    recovered = scenes.own_maps_scores(x, checked, bicubic, check, 1.0)
    held = (own["q05"] <= x) & (x <= own["q95"])
    assert recovered["psnr"] == pytest.approx(scenes.scores(x, own["mean"], 1.0)["psnr"], rel=1e-12)
    assert recovered["coverage_90"] == pytest.approx(held[scenes.INNER].mean(), abs=1e-12)
    assert scenes.own_maps_scores(x, checked, bicubic, {**check, "residual_weight": [0.0, 1.0, 1.0]}, 1.0) == {}


def test_the_table_averages_a_place_s_dates_and_takes_its_worst_band():
    def scene(sr, bicubic, cnn, coverage):
        return {"shape": [4, 436, 388], "srvae": {"psnr": float(np.mean(sr)), "psnr_per_band": sr,
                                                   "coverage_90": coverage, "spearman": 0.5},
                "bicubic": {"psnr": float(np.mean(bicubic)), "psnr_per_band": bicubic},
                "cnn": {"psnr": cnn}}
    stored = {"lake": {"scenes": [scene([40.0, 42.0], [39.0, 41.6], 40.5, 0.88),
                                  scene([38.0, 40.0], [37.0, 38.0], 39.0, 0.92)]}}
    header, rule, row = scenes.markdown_table(stored)
    assert header.count("|") == rule.count("|") == row.count("|") == 10
    # SR 40.0, bicubic 38.9, CNN 39.75; worst band 42.0 − 41.6; maps 0.90; no "uncalibrated": the checked figures
    assert row == ("| lake (2 scenes, 436 × 388) | 40.00 dB (40.00) | 39.75 | 38.90 | +1.10 | +0.40 | +0.25 "
                   "| 0.900 (0.900) | 0.50 |")
