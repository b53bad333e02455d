"""Super-resolution from y alone: the Pyro way, its metrics and the calibration of its uncertainty."""

import math

import pytest
import torch
from conftest import build
from pyro import poutine
from pyro.infer import Predictive

from data import downscale
from evaluation.superres import (
    evaluate_superres,
    image_quality,
    interval_coverage,
    predictive_draws,
    proposal_log_weights,
    super_resolve,
)
from model.elbo import guide_and_model_traces
from training.loop import TrainingOptions, train
from training.objectives import make_objective


def test_samples_come_from_the_model_given_y_with_u_from_the_guide(trained, x):
    srvae, guide = trained
    y = downscale(x)
    guide_trace = poutine.trace(guide.guide).get_trace(None, y)
    assert [n for n, s in guide_trace.nodes.items() if s["type"] == "sample" and n != "data"] == ["u"]
    draws = Predictive(srvae.model, guide=guide.guide, num_samples=7, parallel=True,
                       return_sites=("u", "y", "z", "x"))(None, y)
    assert draws["u"].shape == (7, 64, 4) and draws["z"].shape == (7, 64, 8)
    assert torch.equal(draws["y"][0], y)  # observed, not resampled
    samples = super_resolve(srvae, guide, y, num_samples=7)
    assert samples.shape == (7, 64, 1, 8, 8)
    assert samples.std(0).min().item() > 0  # distinct draws, not one image repeated


def test_sr_does_not_see_x(trained, x):
    """Changing x while keeping y = d(x) leaves the super-resolution unchanged (same seed)."""
    srvae, guide = trained
    y = downscale(x)
    torch.manual_seed(0)
    a = super_resolve(srvae, guide, y, 5)
    torch.manual_seed(0)
    b = super_resolve(srvae, guide, downscale(x.flip(-1).flip(-1)), 5)
    assert torch.equal(a, b)


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95])
def test_coverage_of_calibrated_samples_is_the_nominal_level(level):
    """Samples and truth from the same N(0, 1): coverage = level within 4 binomial standard errors."""
    generator = torch.Generator().manual_seed(0)
    samples = torch.randn(2000, 50, 1, 4, 4, generator=generator)
    truth = torch.randn(50, 1, 4, 4, generator=generator)
    observed = interval_coverage(samples, truth, level).mean().item()
    assert abs(observed - level) < 4 * math.sqrt(level * (1 - level) / truth.numel())


def test_coverage_of_too_narrow_samples_is_low():
    generator = torch.Generator().manual_seed(1)
    samples = 0.2 * torch.randn(2000, 50, 1, 4, 4, generator=generator)
    truth = torch.randn(50, 1, 4, 4, generator=generator)
    assert interval_coverage(samples, truth, 0.9).mean().item() < 0.3  # P(|N(0,1)| < 0.33) ≈ 0.26


def test_psnr_and_ssim():
    generator = torch.Generator().manual_seed(2)
    target = torch.rand(4, 1, 8, 8, generator=generator) * 0.8 + 0.1
    noisy = target + 0.05 * torch.randn(4, 1, 8, 8, generator=generator)
    psnr, ssim = image_quality(noisy, target)
    expected = -10 * torch.log10(((noisy.clamp(0, 1) - target) ** 2).flatten(1).mean(1))
    torch.testing.assert_close(psnr, expected, rtol=1e-5, atol=1e-4)
    _, same_ssim = image_quality(target, target)
    torch.testing.assert_close(same_ssim, torch.ones(4))
    assert (ssim < 1).all() and (ssim > 0.5).all()


@pytest.mark.parametrize("shape", [(3, 1, 8, 8), (2, 4, 32, 24), (2, 3, 6, 7)])
def test_ssim_is_torchmetrics_gaussian_ssim(shape):
    """Our SSIM is the reference one (torchmetrics, a test-only dependency: importing it costs seconds
    per run): Gaussian window of 11 pixels, σ = 1.5, reflected borders, the map averaged per image."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    generator = torch.Generator().manual_seed(3)
    target = torch.rand(shape, generator=generator)
    images = (target + 0.1 * torch.randn(shape, generator=generator)).clamp(0, 1)
    reference = structural_similarity_index_measure(images, target, data_range=1.0, reduction="none")
    torch.testing.assert_close(image_quality(images, target)[1], reference, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def trained_50(digits):
    """50 epochs: enough for the SR mean to beat bicubic upsampling by a margin (≈ 17 dB against 14)."""
    srvae, guide = build(seed=5)
    train(srvae, guide, digits, make_objective("pyro", srvae, guide), TrainingOptions(epochs=50))
    return srvae, guide


def test_sr_beats_bicubic_and_its_90_percent_intervals_hold_about_90_percent(trained_50, digits):
    srvae, guide = trained_50
    x = digits.test_images()
    torch.manual_seed(0)
    metrics = evaluate_superres(srvae, guide, x, downscale(x), scale=2, num_samples=100, image_chunk=100)
    assert metrics["sr_psnr"] > metrics["bicubic_psnr"] + 1.5
    assert metrics["sr_ssim"] > metrics["bicubic_ssim"]
    assert abs(metrics["coverage_90"] - 0.9) < 0.05


def test_evaluate_superres_reports_every_metric(trained, x):
    srvae, guide = trained
    metrics = evaluate_superres(srvae, guide, x, downscale(x), scale=2, num_samples=50, image_chunk=20)
    for name in ("sr_psnr", "sr_ssim", "bicubic_psnr", "bicubic_ssim", "nearest_psnr", "nearest_ssim",
                 "coverage_50", "coverage_90", "coverage_95"):
        assert math.isfinite(metrics[name]), name
    assert 0 < metrics["coverage_50"] < metrics["coverage_90"] < metrics["coverage_95"] <= 1
    assert metrics["reliability_observed"] == sorted(metrics["reliability_observed"])


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_a_posterior_fitted_to_y_works_with_mixture_priors(x, prior):
    """The fitted Gaussian posterior never transforms the prior's support (a mixture has none to transform)."""
    srvae, guide = build(prior=prior, components=3)
    samples = super_resolve(srvae, guide, downscale(x[:8]), num_samples=10, proposals=20, fit_steps=5)
    assert samples.shape == (10, 8, 1, 8, 8) and torch.isfinite(samples).all()


def test_the_draws_scatter_around_the_decoder_means_they_come_with(trained, x):
    """x − E[x | y, z] over the decoder's σ is N(0, 1): its mean within 4 standard errors of 0, its
    variance within 4 of 1 (the SR mean averages E[x | y, z] instead of the noisy draws)."""
    srvae, guide = trained
    torch.manual_seed(3)
    draws, means = predictive_draws(srvae, guide, downscale(x), num_samples=20)
    standardized = ((draws - means) / srvae.p_x_given_yz.gamma).flatten()
    n = standardized.numel()
    assert abs(standardized.mean().item()) < 4 / math.sqrt(n)
    assert abs(standardized.var().item() - 1) < 4 * math.sqrt(2 / n)


def test_importance_weights_leave_out_the_latents_the_model_draws_itself(trained, x):
    """Given y alone the guide proposes u and the model draws z from p(z | y, u), which cancels:
    log w = log p(u) + log p(y | u) − log q(u | y), whatever z was drawn."""
    srvae, guide = trained
    guide_trace, model_trace = guide_and_model_traces(srvae.model, guide.guide, None, downscale(x), 5)
    model_sites, u = model_trace.nodes, model_trace.nodes["u"]["value"]
    expected = (model_sites["u"]["fn"].log_prob(u) + model_sites["y"]["fn"].log_prob(model_sites["y"]["value"])
                - guide_trace.nodes["u"]["fn"].log_prob(u))
    assert torch.allclose(proposal_log_weights(guide_trace, model_trace), expected, atol=1e-3)
