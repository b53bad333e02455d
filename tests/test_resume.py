"""Interrupted training loses nothing, and the same seed gives the same run bit for bit.

The runs here are real ``run.py`` processes: one left alone, one more of the same seed trained only and then
resumed for its evaluation (reproducibility), one killed with SIGKILL and resumed, one stopped with SIGINT and
resumed.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
RUN = ["--epochs", "5", "--batch-size", "16", "--hidden", "64", "--checkpoint-every", "7", "--eval-particles", "4",
       "--eval-repeats", "2", "--eval-max-particles", "8", "--sr-samples", "4", "--iw-samples", "8", "--test-images",
       "40"]
TIMINGS = {"seconds", "train_seconds", "iw_seconds", "iw_peak_memory_mb", "evaluation_seconds"}  # clocks, memory


def start(out: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "run.py", *RUN, *extra, "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def progress(out: Path) -> dict | None:
    """The training progress in the run's checkpoint, once there is one."""
    try:
        return torch.load(out / "checkpoint.pt", weights_only=True)["training"]["progress"]
    except (FileNotFoundError, EOFError, RuntimeError):
        return None


def wait_for(out: Path, process: subprocess.Popen, ready) -> dict:
    """Poll the checkpoint until ``ready(progress)``; fails if the run ends first."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        state = progress(out)
        if state is not None and ready(state):
            return state
        assert process.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.02)
    raise AssertionError("the run never reached the point to interrupt it")


def outcome(out: Path) -> dict:
    """What a finished run produced, without its clocks: parameters, history, metrics, SR samples."""
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    metrics = json.loads((out / "metrics.json").read_text())
    return {"srvae": checkpoint["srvae"], "guide": checkpoint["guide"],
            "history": [{k: v for k, v in row.items() if k not in TIMINGS} for row in checkpoint["history"]],
            "metrics": {k: v for k, v in metrics.items() if k not in TIMINGS},
            "superres": dict(np.load(out / "superres.npz"))}


def assert_identical(a: dict, b: dict) -> None:
    """Bit for bit: every parameter and buffer, every history value, metric and SR array."""
    for part in ("srvae", "guide"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key}"
    assert a["history"] == b["history"]
    assert a["metrics"] == b["metrics"]
    for key in a["superres"]:
        assert np.array_equal(a["superres"][key], b["superres"][key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    process = start(out)
    assert process.wait(timeout=300) == 0, process.stderr.read()
    return outcome(out)


def test_a_run_killed_with_sigkill_and_resumed_is_the_uninterrupted_run(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    process = start(out)
    while True:  # freeze the run past its first epoch, and kill it where its last checkpoint is mid-epoch
        wait_for(out, process, lambda p: p["steps_done"] >= 100 and p["step"] > 0)
        process.send_signal(signal.SIGSTOP)
        left = progress(out)
        if left["step"] > 0:
            break
        process.send_signal(signal.SIGCONT)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    assert left["epoch"] < 5 and 0 < left["step"] < 90 and not (out / "metrics.json").exists()
    finish("--resume", str(out))
    assert_identical(uninterrupted, outcome(out))


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_writes_a_checkpoint_says_how_to_resume_and_resuming_finishes_the_same_run(
        uninterrupted, tmp_path, signum, status):
    out = tmp_path / "stopped"
    process = start(out)
    wait_for(out, process, lambda p: p["epoch"] >= 1)
    process.send_signal(signum)
    assert process.wait(timeout=60) == status
    stderr = process.stderr.read()
    last = stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr
    assert last.startswith("run.py: interrupted: stopped at epoch") and f"python run.py --resume {out}" in last
    state = progress(out)
    assert 1 <= state["epoch"] < 5 and not (out / "metrics.json").exists()
    rows = (out / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + state["epoch"]  # the history written so far matches the checkpoint
    if signum == signal.SIGINT:  # both signals write the checkpoint by one path: resuming one of them suffices
        finish("--resume", str(out))
        assert_identical(uninterrupted, outcome(out))


def test_a_finished_run_resumed_with_more_epochs_equals_the_longer_run(tmp_path):
    """With a constant learning rate; the cosine schedule is planned over the run's epochs, so more
    epochs re-plan it and the extended run is not the one planned that long from the start."""
    constant = ["--lr-schedule", "constant"]
    out, longer = tmp_path / "short", tmp_path / "longer"
    finish(*RUN, *constant, "--epochs", "1", "--out", str(out))
    finish("--resume", str(out), "--epochs", "2")
    finish(*RUN, *constant, "--epochs", "2", "--out", str(longer))
    assert_identical(outcome(longer), outcome(out))


def test_the_same_seed_gives_the_same_run_bit_for_bit_also_trained_only_and_then_evaluated(uninterrupted, tmp_path):
    """A second run of the same seed stopped at its trained checkpoint (``--train-only``: no metrics, no SR
    samples) and resumed for its evaluation is the uninterrupted run bit for bit: training and evaluation
    are reproducible, and splitting them changes neither."""
    out = tmp_path / "trained-only"
    process = start(out, "--train-only")
    assert process.wait(timeout=300) == 0, process.stderr.read()
    assert len(progress(out)["history"]) == len(uninterrupted["history"]) == 5  # every epoch trained
    assert not (out / "metrics.json").exists() and not (out / "superres.npz").exists()
    finish("--resume", str(out))
    again = outcome(out)
    assert again["history"][-1]["skipped_steps"] == 0
    assert_identical(uninterrupted, again)


def test_diverging_training_stops_with_exit_3_and_keeps_the_last_good_checkpoint(tmp_path):
    """Adam's first step at lr 10³⁰ sends the parameters to ±10³⁰; every later loss is non-finite."""
    out = tmp_path / "diverged"
    result = subprocess.run([sys.executable, "run.py", *RUN, "--lr", "1e30", "--max-bad-steps", "4", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 3
    line = result.stderr.strip().splitlines()[-1]
    assert ("training stopped: 4 steps in a row had a non-finite or absurd loss or gradient (epoch 1, step 5 of 90)"
            in line)
    assert "--clip-norm" in line and "--clip-norm 100" not in line  # twice the run's own gradient norm
    assert "a learning rate too high (--lr 1e+30)" in line and f"--resume {out}" in line
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["training"]["progress"]["steps_done"] == 0  # the state before the first step: the last good one
    assert all(torch.isfinite(v).all() for v in checkpoint["srvae"].values())
    assert not (out / "metrics.json").exists()


def test_history_rows_from_an_older_checkpoint_keep_their_place_with_empty_new_columns(tmp_path):
    """A run resumed from a checkpoint written before the gradient-norm columns: every column is
    written, the old rows' missing cells empty."""
    from training.checkpoint import write_history

    write_history(tmp_path / "history.csv", [{"epoch": 1, "train_loss": 2.5},
                                             {"epoch": 2, "train_loss": 2.0, "grad_norm_median": 3.0}])
    assert (tmp_path / "history.csv").read_text().splitlines() == [
        "epoch,train_loss,grad_norm_median", "1,2.5,", "2,2.0,3.0"]
