"""bench/gpu_check.py, the check a GPU machine runs in one go, works: its small variant on the CPU runs every
step and writes the figures it prints."""

import json

import numpy as np

from bench.gpu_check import main


def test_the_gpu_check_runs_every_step_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "check"
    assert main(["--device", "cpu", "--small", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(f"== {step}. " in printed for step in range(1, 7)) and "gpu_check done" in printed
    bench = json.loads((out / "bench.json").read_text())
    assert bench["steps"][0]["images_per_second"]["Trace_ELBO"] > 0
    rates = bench["scene"]["megapixels_per_second"]
    assert set(rates) == {"SRVAE, 1 draw per tile", "SRVAE, 10 draws per tile", "SRVAE, 100 draws per tile",
                          "CNN, one pass"}
    assert rates["SRVAE, 100 draws per tile"] < rates["SRVAE, 1 draw per tile"]  # the draws cost network passes
    assert np.isfinite(json.loads((out / "train" / "metrics.json").read_text())["sr_psnr"])
    for row in bench["evaluation"]["setups"].values():
        assert row["eval_seconds_per_test_image_total"] > 0 and 0 < row["default_run"]["evaluation_share"] < 1
    mean = np.load(out / "scene" / "mean.npy")
    assert mean.shape == (1, 48, 48) and np.isfinite(mean).all()
