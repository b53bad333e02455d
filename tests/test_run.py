"""run.py end to end and its checkpoint (the bad inputs are in test_bad_input.py)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data import load_dataset
from evaluation.report import evaluate_run
from experiment.config import RunConfig
from model.conditionals import POWER_GAIN, POWER_RANGE
from training.build import build_model_and_guide
from training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--epochs", "1", "--eval-particles", "8", "--eval-repeats", "10", "--eval-max-particles", "80", "--sr-samples",
         "8", "--iw-samples", "20", "--test-images", "120"]  # a third of the digits' test set: the suite's time
OUTPUTS = {"config.json", "history.csv", "metrics.json", "checkpoint.pt", "loss_curves.png", "reconstructions.png",
           "samples.png", "superres.png", "reliability.png", "sparsification.png", "superres.npz"}


def run(*args):
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    result = run("--guide", "amortized", *QUICK, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


def test_writes_every_output_and_a_summary(finished_run):
    out, result = finished_run
    assert {p.name for p in out.iterdir()} == OUTPUTS
    assert all((out / name).stat().st_size > 0 for name in OUTPUTS)
    assert "test −ELBO, Pyro Trace_ELBO" in result.stdout and f"outputs in {out}/" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["guide"] == "amortized" and config["epochs"] == 1 and config["device"] == "cpu"
    import pyro  # what produced the run: package versions and the commit of this checkout

    assert config["versions"]["torch"] == torch.__version__ and config["versions"]["pyro-ppl"] == pyro.__version__
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert config["git_commit"] == (commit or None)
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    assert len(rows) == 1 and set(rows[0]) >= {"epoch", "train_loss", "test_loss", "gamma_x", "gamma_y"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert abs(metrics["difference_in_se"]) < 4  # the cross-check holds in the run itself (10 repeats)
    assert metrics["bits_per_dim_kx"] > metrics["bits_per_dim_kx_ky"] > 0


def test_discretized_likelihood_with_a_mixture_prior_end_to_end(tmp_path):
    out = tmp_path / "out"
    result = run("--likelihood", "discretized", "--prior", "mog", "--components", "3", *QUICK, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == OUTPUTS
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["prior_kl_method"] == "tight bound"
    assert metrics["explicit_neg_elbo"] > 0 and metrics["iw_neg_log_likelihood"] > 0  # masses: −log P > 0
    assert "discretized likelihood: −ELBO bounds −log P(x, y)" in result.stdout


def test_generalized_normal_pixels_end_to_end(tmp_path):
    """The shapes are learned away from the Gaussian's 2, logged each epoch, saved, and printed."""
    out = tmp_path / "out"
    result = run("--likelihood", "gennorm", *QUICK, "--epochs", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == OUTPUTS
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    powers = [float(row["power_x"]) for row in rows]
    assert len(powers) == 3 and 1 < powers[-1] < powers[0] < 2  # digits' errors: heavier tails than a Gaussian's
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["per_band"]["power_x"] == [pytest.approx(metrics["power_x"])]
    assert abs(metrics["difference_in_se"]) < 4
    assert "shape p (x), (y): 1 Laplace, 2 Gaussian" in result.stdout
    saved = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)["srvae"]
    (low, high), logit = POWER_RANGE, POWER_GAIN * saved["p_x_given_yz.power_logit"]  # what was saved is what ran
    powers = low + (high - low) * torch.sigmoid(logit).flatten()
    assert torch.allclose(powers, torch.tensor(metrics["per_band"]["power_x"]))


def test_vae_baseline_end_to_end(tmp_path):
    out = tmp_path / "out"
    result = run("--model", "vae", *QUICK, "--sr-fit-steps", "20", "--sr-proposals", "50", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == OUTPUTS
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["k_y"] == 0 and metrics["bits_per_dim_kx"] == metrics["bits_per_dim_kx_ky"]
    assert "−ELBO bounds −log p(x)" in result.stdout and "active units of z" in result.stdout


def test_semi_amortized_guide_with_vamp_prior_end_to_end(tmp_path):
    out = tmp_path / "out"
    result = run("--guide", "semi-amortized", "--refine-steps", "2", "--prior", "vamp", "--components", "3",
                 *QUICK, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == OUTPUTS
    assert json.loads((out / "metrics.json").read_text())["prior_kl_method"] == "tight bound"


def test_local_guide_end_to_end_and_reevaluated(tmp_path):
    out = tmp_path / "out"
    result = run("--guide", "local", "--local-steps", "50", "--sr-fit-steps", "20", "--sr-proposals", "50",
                 *QUICK, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == OUTPUTS
    again = run("--evaluate", str(out / "checkpoint.pt"), "--local-steps", "50", "--sr-fit-steps", "20",
                "--sr-proposals", "50", *QUICK[2:], "--out", str(tmp_path / "eval"))
    assert again.returncode == 0, again.stderr
    saved = json.loads((out / "metrics.json").read_text())
    measured = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert measured["pyro_neg_elbo"] == pytest.approx(saved["pyro_neg_elbo"], rel=1e-6)


def test_checkpoint_reloads_with_weights_only_and_reproduces_the_test_elbo(finished_run):
    out, _ = finished_run
    checkpoint = load_checkpoint(out / "checkpoint.pt")  # torch.load(..., weights_only=True)
    config = RunConfig.from_dict(checkpoint["config"])
    srvae, guide = build_model_and_guide(config, tuple(config.image_shape))
    srvae.load_state_dict(checkpoint["srvae"])
    guide.load_state_dict(checkpoint["guide"])
    saved = json.loads((out / "metrics.json").read_text())
    again = evaluate_run(srvae, guide, load_dataset(config.dataset).test_subset(config.test_images), config)
    for key in ("pyro_neg_elbo", "explicit_neg_elbo", "rec_x", "kl_z", "iw_neg_log_likelihood", "sr_psnr",
                "coverage_90", "gamma_x"):
        assert again[key] == pytest.approx(saved[key], rel=1e-6, abs=1e-6), key
    assert torch.load(out / "checkpoint.pt", weights_only=True)["format"] == 1


def test_evaluate_a_checkpoint_reproduces_its_metrics(finished_run, tmp_path):
    out, _ = finished_run
    result = run("--evaluate", str(out / "checkpoint.pt"), *QUICK[2:], "--out", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr
    assert "epochs trained earlier, evaluated on cpu" in result.stdout  # not "in 0.0 s"
    assert {p.name for p in (tmp_path / "eval").iterdir()} == OUTPUTS - {"history.csv", "checkpoint.pt"}
    saved = json.loads((out / "metrics.json").read_text())
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in ("pyro_neg_elbo", "explicit_neg_elbo", "iw_neg_log_likelihood", "sr_psnr"):
        assert again[key] == pytest.approx(saved[key], rel=1e-6), key


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run("--out", str(blocker / "out"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"--out {blocker / 'out'}: cannot write there" in result.stderr
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_asked_for_without_a_gpu(tmp_path):
    result = run("--device", "cuda", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--device cuda: no CUDA device is available here; use --device cpu or auto" in result.stderr
    assert not (tmp_path / "out").exists()


def test_help_explains_every_flag():
    result = run("--help")
    assert result.returncode == 0
    from experiment.cli import build_parser

    actions = [a for a in build_parser()._actions if a.option_strings and a.dest != "help"]
    assert len(actions) >= 12
    for action in actions:
        assert action.help and action.option_strings[0] in result.stdout
