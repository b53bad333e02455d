"""End to end: run.py on MNIST-format files and on paired multi-band folders (their bad
data files are in test_bad_input.py)."""

import json

import numpy as np
import pytest
import torch
from datafiles import write_folder, write_mnist
from test_run import OUTPUTS, QUICK, run

from training.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    write_mnist(root / "data", n_train=24, n_test=8)
    out = root / "out"
    result = run("--dataset", "mnist", "--data-dir", str(root / "data"), *QUICK, "--channels", "8", "--hidden", "32",
                 "--out", str(out))
    assert result.returncode == 0, result.stderr
    return root, out


def test_mnist_trains_with_the_conv_networks_chosen_by_size(mnist_run):
    _, out = mnist_run
    assert {p.name for p in out.iterdir()} == OUTPUTS
    config = json.loads((out / "config.json").read_text())
    assert config["arch"] == "conv" and config["image_shape"] == [1, 28, 28] and config["test_images"] == 8
    assert config["likelihood"] == "gennorm"
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["config"]["channels"] == 8
    assert any(".net.0.weight" in k and v.dim() == 4 for k, v in state["guide"].items())  # convolution kernels


def test_a_conv_checkpoint_is_rebuilt_from_its_config_and_reproduces_its_metrics(mnist_run, tmp_path):
    _, out = mnist_run  # its data set and folder too: no --dataset, no --data-dir
    result = run("--evaluate", str(out / "checkpoint.pt"), *QUICK[2:], "--out", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr
    saved, again = (json.loads((d / "metrics.json").read_text()) for d in (out, tmp_path / "eval"))
    for key in ("explicit_neg_elbo", "iw_neg_log_likelihood", "sr_psnr"):
        assert again[key] == pytest.approx(saved[key], rel=1e-6), key


def test_a_paired_four_band_folder_trains_and_maps_sr_back_to_its_units(tmp_path):
    images = write_folder(tmp_path / "scene", n=10, size=16, scale=2, bands=4, suffix=".npy", dtype=np.float32)
    out = tmp_path / "out"
    result = run("--dataset", "folder", "--data-dir", str(tmp_path / "scene"), *QUICK, "--hidden", "32",
                 "--out", str(out))
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["paired"] and config["arch"] == "mlp" and len(config["normalization"]["low"]) == 4
    assert config["augment"]  # square tiles of a folder are flipped and rotated by default
    saved = np.load(out / "superres.npz")
    lr_raw = [images["lr", f"img{i}"] for i in range(10)]
    for lr in saved["lr"]:  # the LR inputs, mapped back, are the measured LR images themselves
        assert min(np.abs(lr - raw).max() for raw in lr_raw) < 1e-3 * 4000
    assert saved["sr_mean"].shape == (2, 4, 16, 16) and saved["sr_std"].shape == (2, 4, 16, 16)
    assert saved["sr_mean"].max() > 10  # in the data's units (0 … 4000), not in [0, 1]


def test_a_cropped_hr_only_folder_trains_on_patches(tmp_path):
    write_folder(tmp_path / "scene", n=6, size=32, bands=3, paired=False)
    out = tmp_path / "out"
    result = run("--dataset", "folder", "--data-dir", str(tmp_path / "scene"), "--crop", "16", "--scale", "4",
                 *QUICK, "--hidden", "32", "--out", str(out))
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["image_shape"] == [3, 16, 16] and not config["paired"]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["config"]["crop"] == 16


def test_a_scene_trains_on_crops_and_reports_the_uncertainty_of_its_held_out_tiles(tmp_path):
    """One 4-band scene of 40×40 (uint16), cut by rows: calibration, std–error correlation, AUSE, CRPS and
    per-band figures are in metrics.json, the sparsification figure beside the others."""
    rng = np.random.default_rng(0)
    (tmp_path / "scene" / "hr").mkdir(parents=True)
    np.save(tmp_path / "scene" / "hr" / "scene.npy", rng.integers(300, 5000, (4, 40, 40)).astype(np.uint16))
    out = tmp_path / "out"
    result = run("--dataset", "folder", "--data-dir", str(tmp_path / "scene"), "--crop", "8", *QUICK,
                 "--channels", "8", "--hidden", "32", "--arch", "conv", "--rgb-bands", "2,1,0", "--out", str(out))
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["augment"] and config["noise"] == "pixel" and config["lr_schedule"] == "cosine"
    assert config["likelihood"] == "gennorm"  # the per-pixel scale's default
    assert config["test_images"] == 5 and config["train_images"] == 3 * 4  # 8 test rows: 5 tiles; 16×16 chips above
    metrics = json.loads((out / "metrics.json").read_text())
    assert -1 <= metrics["std_error_spearman"] <= 1 and 0 <= metrics["ause"] <= metrics["ause_random"] + 1
    assert metrics["sr_crps"] > 0 and len(metrics["per_band"]["sr_rmse_units"]) == 4
    assert metrics["per_band"]["bicubic_rmse_units"][0] > 100  # in the data's units (300 … 5000)
    assert {p.name for p in out.iterdir()} == OUTPUTS
