"""The evaluation's precision chosen by its standard error, its default K, and its progress (and
training's, in the same style)."""

import math

import pytest
import torch
from test_elbo import seed_typo, wrong_k

import model.conditionals
from evaluation.elbo import evaluate_elbo, repeated, repeats_needed
from evaluation.progress import Stages, clock
from evaluation.report import precision
from experiment.cli import build_parser
from experiment.config import IW_MIN_SAMPLES, IW_PIXEL_BUDGET, default_iw_samples
from experiment.outputs import progress_lines

DEFAULTS = build_parser().parse_args([])


def test_the_two_stage_rule_takes_the_repeats_the_pilot_spread_asks_for():
    pilot = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)  # sd √(4/3)
    assert repeats_needed(pilot, 0.1, most=1000) == math.ceil(4 / 3 / 0.01)
    assert repeats_needed(pilot, 0.1, most=50) == 50  # the cap
    assert repeats_needed(pilot, 10.0, most=1000) == 4  # never fewer than the pilot


def test_an_estimate_repeated_to_a_standard_error_reports_it_honestly():
    """Unit-variance repeats to a target of 0.1: about 100 repeats each time, and the reported standard
    error covers the truth (0) at the nominal rate over 400 independent runs: 95 % ± 3 binomial SE."""
    generator = torch.Generator().manual_seed(0)
    draws, covered, counts = lambda: torch.randn(1, generator=generator, dtype=torch.float64), 0, []
    for _ in range(400):
        rows = repeated(draws, repeats=10, target_se=0.1, max_particles=10_000)[:, 0]
        counts.append(len(rows))
        covered += abs(rows.mean()) <= 1.96 * rows.std() / math.sqrt(len(rows))
    binomial_se = math.sqrt(0.95 * 0.05 / 400)
    assert abs(covered / 400 - 0.95) < 3 * binomial_se
    assert 80 < sum(counts) / len(counts) < 125  # (sd/0.1)² = 100 on average, up to the pilot's bias


def test_progress_counts_particles_up_to_the_planned_total():
    calls = []
    rows = repeated(lambda: torch.tensor([0.0, 1.0]), repeats=3, target_se=0.5, max_particles=144,
                    progress=lambda done, total: calls.append((done, total)), particles=16)
    assert len(rows) == 3  # no spread: the pilot is enough
    assert calls == [(16, 48), (32, 48), (48, 48)]


@pytest.fixture
def run_precision():
    return {"num_particles": DEFAULTS.eval_particles, "repeats": DEFAULTS.eval_repeats,
            "target_se": DEFAULTS.elbo_se, "max_particles": DEFAULTS.eval_max_particles}


def test_the_cross_check_at_the_default_precision_holds(trained, x, run_precision):
    srvae, guide = trained
    metrics = evaluate_elbo(srvae, guide, x, **run_precision)
    assert abs(metrics["difference_in_se"]) < 4
    for name in ("pyro_neg_elbo_se", "explicit_neg_elbo_se"):
        assert metrics[name] <= DEFAULTS.elbo_se * 1.5 or metrics["repeats"] * metrics["particles"] >= 256
    assert metrics["repeats"] * metrics["particles"] <= DEFAULTS.eval_max_particles


@pytest.mark.parametrize("mistake", [wrong_k, seed_typo])
def test_the_cross_check_at_the_default_precision_still_catches_a_wrong_term(trained, x, monkeypatch, mistake,
                                                                             run_precision):
    srvae, guide = trained
    monkeypatch.setattr(model.conditionals, "gaussian_log_likelihood", mistake)
    assert abs(evaluate_elbo(srvae, guide, x, **run_precision)["difference_in_se"]) > 4


def test_the_summary_says_when_the_cap_stopped_an_estimate_short():
    metrics = {"repeats": 16, "particles": 16, "target_se": 0.05, "pyro_neg_elbo_se": 0.08}
    assert precision(metrics, "repeats", "pyro_neg_elbo_se") == "256 particles per image, 16 × 16; capped: ± 0.05 " \
                                                                 "was asked"
    metrics["pyro_neg_elbo_se"] = 0.04
    assert "capped" not in precision(metrics, "repeats", "pyro_neg_elbo_se")


@pytest.mark.parametrize("shape, k", [((1, 8, 8), 1000), ((1, 28, 28), IW_MIN_SAMPLES), ((4, 32, 32), IW_MIN_SAMPLES),
                                      ((1, 12, 12), IW_PIXEL_BUDGET // 144)])
def test_the_default_k_keeps_the_draws_times_pixels_per_image_bounded(shape, k):
    assert default_iw_samples(shape) == k
    assert k == IW_MIN_SAMPLES or k * math.prod(shape) <= IW_PIXEL_BUDGET


def test_progress_lines_in_logs_give_the_stage_the_count_and_the_time_left(capsys, monkeypatch):
    now = [0.0]
    monkeypatch.setattr("evaluation.progress.time.perf_counter", lambda: now[0])
    stages = Stages(interactive=False)
    stage = stages("importance-weighted log-likelihood", 100)
    for done in range(10, 101, 10):
        now[0] += 3.0  # 3 s per tenth
        stage(done)
    stages.done()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("importance-weighted log-likelihood …")
    assert "10/100 images, about 27 s left" in lines[1]
    assert "100/100 images in 30 s" in lines[-2] and lines[-1].endswith("evaluation done in 30 s")
    assert len(lines) == 12


def test_a_quick_stage_prints_no_line_per_tenth(capsys):
    stages = Stages(interactive=False)
    stage = stages("figures", 7, "files")
    for done in range(1, 8):
        stage(done)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "7/7 files in 0 s" in lines[1]


def test_training_lines_in_logs_start_after_the_first_epoch_and_give_the_time_left(capsys):
    report = progress_lines(20)
    for epoch in range(1, 21):
        report({"epoch": epoch, "train_loss": -1.0, "seconds": 3.0 * epoch})  # 3 s per epoch
    lines = capsys.readouterr().err.splitlines()
    assert [int(line.split()[1].split("/")[0]) for line in lines] == [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert lines[0].endswith("3.0 s, about 57 s left") and lines[-1].endswith("60.0 s")


def test_clock():
    assert [clock(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]
