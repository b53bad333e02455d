"""The bundled Sentinel-2 model: weights and configuration only, small, and, named in place of a checkpoint,
sharper than bicubic with honest intervals on rows of Malmö it never trained on (the scene's last 128 rows
were its test tiles)."""

import json
from pathlib import Path

import numpy as np
import torch

from data import upsample
from experiment.bundled import BUNDLED, bundled_path
from experiment.scene import superresolve
from training.checkpoint import REQUIRED

ROOT = Path(__file__).resolve().parent.parent
MARGIN = 8  # HR pixels at the crop's border, where neither method sees context


def test_every_bundled_model_is_weights_configuration_and_octave_ratio_only():
    for name in BUNDLED:
        path = bundled_path(name)
        assert path.stat().st_size < 10 * 2**20
        saved = torch.load(path, weights_only=True)
        assert sorted(saved) == sorted([*REQUIRED, "calibration"])
        bands = saved["config"]["image_shape"][0]
        assert len(saved["calibration"]["octave_ratio"]) == bands
        assert all(0.2 < ratio < 5 for ratio in saved["calibration"]["octave_ratio"])
    config = torch.load(bundled_path("sentinel2-rgbn"), weights_only=True)["config"]
    assert config["image_shape"][0] == 4 and config["scale"] == 2 and config["units"] == "reflectance"
    assert config["normalization"]["span"] == [10_000.0] * 4 and config["normalization"]["low"] == [0.0] * 4


def psnr(image: np.ndarray, x: np.ndarray) -> float:
    """Against reflectance's peak of 10 000, away from the border."""
    inner = (slice(None), slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    return float(10 * np.log10(1e8 / ((image - x)[inner] ** 2).mean()))


def test_the_bundled_model_beats_bicubic_on_malmo_rows_it_never_saw(tmp_path):
    """Wald's protocol on a 128 × 128 corner of the held-out rows: the SR mean is at least 0.5 dB sharper than
    bicubic upsampling of the same y (+1.0 dB measured), and the 5–95 % maps hold 85–97 % of the truth (0.918
    measured as calibrated on the corner itself one octave down, 0.952 with the model's own intervals; the band is
    wide because neighbouring pixels' errors are correlated)."""
    x = np.load(ROOT / "data" / "sentinel2" / "hr" / "malmo_10m.npy").astype(np.float64)[:, -128:, :128]
    y = x.reshape(4, 64, 2, 64, 2).mean((2, 4))
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    assert superresolve(["sentinel2-rgbn", str(tmp_path / "y.npy"), "--samples", "4", "--out",
                         str(tmp_path / "out")]) == 0
    mean, q05, q95 = (np.load(tmp_path / "out" / f"{name}.npy") for name in ("mean", "q05", "q95"))
    bicubic = upsample(torch.as_tensor(y)[None] + 0.5, 2, "bicubic", clamp=False)[0].numpy() - 0.5  # bins' centres
    assert psnr(mean, x) > psnr(bicubic, x) + 0.5
    inner = (slice(None), slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    assert 0.85 < ((q05 <= x) & (x <= q95))[inner].mean() < 0.97
    summary = json.loads((tmp_path / "out" / "superres.json").read_text())
    assert summary["units"].startswith("reflectance × 10000") and not any(summary["out_of_range"]["warned"])
