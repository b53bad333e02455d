"""bench.satellite gathers seeds trained apart: finished runs in its folder, and seeds already in the
results file for the same command, are read, not run again, and the table is their mean ± standard
deviation."""

import json

import pytest

import bench.satellite as satellite


def finished_seed(out, seed: int, sr_psnr: float, cnn_psnr: float, cnn_steps: int = 4000) -> None:
    run = out / f"srvae-seed{seed}"
    run.mkdir(parents=True)
    metrics = dict.fromkeys(satellite.SRVAE_KEYS, 0.5)
    metrics.update(sr_psnr=sr_psnr, bicubic_psnr=36.0, train_seconds=100.0 + seed,
                   per_band={"sr_psnr": [sr_psnr], "sr_rmse_units": [1.0], "sr_crps_units": [0.5]})
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "config.json").write_text(json.dumps({"epochs": 1000, "train_images": 256, "batch_size": 64}))
    history = ["epoch,skipped_steps,clipped_steps,test_loss", "1,0,1,-12.0", "2,0,0,-2.0", "3,1,0,-12.0", "4,0,2,",
               "5,0,0,-7.5", "6,0,0,-13.0"] + [f"{epoch},0,0,-13.0" for epoch in range(7, 21)]
    (run / "history.csv").write_text("\n".join(history) + "\n")
    cnn = {"cnn_psnr": cnn_psnr, "cnn_ssim": 0.9, "cnn_mae": 0.01, "steps": cnn_steps, "seconds": 10.0,
           "cnn_psnr_per_band": [cnn_psnr], "cnn_rmse_units_per_band": [1.0], "bicubic_psnr_per_band": [36.0],
           "bicubic_rmse_units_per_band": [2.0]}
    (out / f"cnn-seed{seed}.json").write_text(json.dumps(cnn))


def recording(monkeypatch, out) -> list:
    """The commands bench.satellite runs, each one leaving seed 0's finished run in ``out``."""
    commands = []

    def record(command):
        commands.append(command)
        finished_seed(out, 0, 38.0, 37.9)

    monkeypatch.setattr(satellite, "run", record)
    return commands


def test_finished_seeds_are_gathered_without_running_anything(tmp_path, monkeypatch):
    def no_run(command):
        raise AssertionError(f"ran {command}")

    monkeypatch.setattr(satellite, "run", no_run)
    out, results = tmp_path / "bench", tmp_path / "results.json"
    for seed, (sr, cnn) in enumerate([(37.0, 37.5), (38.0, 38.0), (39.0, 38.3)]):
        finished_seed(out, seed, sr, cnn)
    assert satellite.main(["--seeds", "0", "1", "2", "--out", str(out), "--results", str(results)]) == 0
    table = json.loads(results.read_text())["satellite"]
    assert [row["srvae_seconds"] for row in table["seeds"]] == [100.0, 101.0, 102.0]
    assert table["summary"]["sr_psnr"] == "38 ± 1 (37–39)"
    assert table["summary"]["srvae_minus_cnn_psnr"] == "0.06667 ± 0.6 (-0.5–0.7)"
    # after the first tenth of the 20 epochs (epoch 2's rise of 10 is not counted), the test −ELBO rose from
    # its best, −12, to −7.5: a setback of 4.5; an epoch without a test loss is passed over
    stabilities = [(row["worst_setback"], row["skipped_steps"], row["clipped_steps"]) for row in table["seeds"]]
    assert stabilities == [(4.5, 1, 3)] * 3


def test_a_variant_runs_with_its_flags_and_is_written_under_its_own_key(tmp_path, monkeypatch):
    commands = recording(monkeypatch, tmp_path)
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"satellite": "kept"}))
    satellite.main(["--seeds", "0", "--out", str(tmp_path), "--results", str(results),
                    "--run-args", "--likelihood laplace", "--key", "satellite_laplace"])
    assert commands[0][-2:] == ["--likelihood", "laplace"]
    written = json.loads(results.read_text())
    assert written["satellite"] == "kept"
    assert written["satellite_laplace"]["command"].endswith("--crop 32 --likelihood laplace")


def test_a_cnn_trained_for_other_steps_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(satellite, "run", lambda command: None)
    finished_seed(tmp_path, 0, 37.0, 37.5, cnn_steps=1000)
    with pytest.raises(SystemExit, match="trained 1000 steps, the SRVAE 4000"):
        satellite.main(["--seeds", "0", "--out", str(tmp_path), "--results", str(tmp_path / "r.json")])


def test_seeds_already_in_the_results_file_for_the_same_command_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(satellite, "run", lambda command: pytest.fail(f"ran {command}"))
    out, results = tmp_path / "bench", tmp_path / "results.json"
    for seed, (sr, cnn) in enumerate([(37.0, 37.5), (38.0, 38.0)]):
        finished_seed(out, seed, sr, cnn)
    satellite.main(["--seeds", "0", "1", "--out", str(out), "--results", str(results)])
    (out / "srvae-seed0" / "metrics.json").unlink()  # seed 0's run folder is gone; its row is kept
    finished_seed(out, 2, 39.0, 38.3)
    satellite.main(["--seeds", "0", "1", "2", "--out", str(out), "--results", str(results)])
    table = json.loads(results.read_text())["satellite"]
    assert [row["sr_psnr"] for row in table["seeds"]] == [37.0, 38.0, 39.0]
    assert table["summary"]["sr_psnr"] == "38 ± 1 (37–39)"
    with pytest.raises(pytest.fail.Exception, match="ran"):  # another command's rows are not reused
        satellite.main(["--seeds", "0", "--out", str(out), "--results", str(results), "--epochs", "10"])


def test_crop_0_runs_a_folder_of_tiles_without_crop(tmp_path, monkeypatch):
    commands = recording(monkeypatch, tmp_path)
    results = tmp_path / "results.json"
    satellite.main(["--seeds", "0", "--crop", "0", "--data-dir", "TILES", "--out", str(tmp_path),
                    "--results", str(results), "--key", "tiles"])
    assert "--crop" not in commands[0]
    assert json.loads(results.read_text())["tiles"]["command"] == "python run.py --dataset folder --data-dir TILES"


def test_a_benchmark_s_entry_keeps_the_entries_written_while_it_ran(tmp_path):
    """Two benchmarks run for hours side by side: each writes its own entry into the results file as it is
    when it finishes, so neither erases what the other wrote meanwhile."""
    import json

    from bench.record import read, record

    path = tmp_path / "results.json"
    record(path, "first", {"value": 1})
    started = read(path)  # a long benchmark reads the file as it starts…
    record(path, "second", {"value": 2})  # …another one finishes meanwhile…
    record(path, "first", {**started["first"], "value": 3})  # …and the first one finishes
    assert json.loads(path.read_text()) == {"first": {"value": 3}, "second": {"value": 2}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
