"""Test 6: a few epochs on the digits lower the test −ELBO by a stated margin, with either objective."""

import math

import pytest
import torch
from conftest import build, mean_and_se, neg_elbo_per_image
from pyro import poutine

from model.elbo import explicit_elbo
from training.loop import TrainingOptions, adam, train
from training.objectives import make_objective
from training.warmup import ScaleSites, kl_scale


@pytest.mark.parametrize("objective", ["pyro", "explicit"])
def test_five_epochs_lower_the_test_neg_elbo_by_100_nats(digits, objective):
    """From 119 nats per image at initialisation (the decoder of x starts at bicubic y) to below 0."""
    x = digits.test_images()
    srvae, guide = build(seed=1)
    before = neg_elbo_per_image(srvae, guide, x)
    history = train(srvae, guide, digits, make_objective(objective, srvae, guide),
                    TrainingOptions(epochs=5, monitor_test=True))
    after = neg_elbo_per_image(srvae, guide, x)
    assert before - after > 100 and after < 0, (before, after)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    assert history[-1]["test_loss"] < history[0]["test_loss"]


@pytest.mark.parametrize("objective", ["pyro", "explicit"])
def test_objectives_sum_the_neg_elbo_over_the_batch(trained, x, objective):
    """Every term is summed over images (none averaged): the batch (x, x) costs twice as much as x."""
    srvae, guide = trained
    loss = make_objective(objective, srvae, guide, num_particles=200)
    with torch.no_grad():
        once, twice = loss(x).item(), loss(torch.cat([x, x])).item()
    assert abs(once) > 100
    assert twice == pytest.approx(2 * once, rel=0.01)


def test_kl_scale_schedule():
    assert kl_scale(1, 0.5, 2) == 0.25 and kl_scale(2, 1.0, 2) == 1.0 and kl_scale(5, 0.1, 2) == 1.0
    assert kl_scale(1, 0.01, 0) == 1.0


def test_scale_sites_scales_only_the_latents(trained, x):
    srvae, guide = trained
    scaled = ScaleSites(0.25)
    guide_trace = poutine.trace(scaled(guide.guide)).get_trace(x)
    model_trace = poutine.trace(poutine.replay(scaled(srvae.model), trace=guide_trace)).get_trace(x)
    scales = {name: site["scale"] for trace in (guide_trace, model_trace) for name, site in trace.nodes.items()
              if site["type"] == "sample" and name != "data"}
    assert scales == {"u": 0.25, "z": 0.25, "y": 1.0, "x": 1.0}


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_warmup_objective_is_reconstruction_minus_beta_kl(trained, x, beta):
    """Pyro's scaled loss and the explicit −(rec_x + rec_y − β(KL_u + KL_z)) agree within 4 SE."""
    srvae, guide = trained
    pyro_loss, explicit_loss = (make_objective(name, srvae, guide, num_particles=100) for name in ("pyro", "explicit"))
    with torch.no_grad():
        pyro_values = [pyro_loss(x, kl_scale=beta).item() for _ in range(20)]
        explicit_values = [explicit_loss(x, kl_scale=beta).item() for _ in range(20)]
    (a, se_a), (b, se_b) = mean_and_se(pyro_values), mean_and_se(explicit_values)
    assert abs(a - b) < 4 * math.hypot(se_a, se_b)
    with torch.no_grad():
        full = explicit_loss(x).item()
        terms = explicit_elbo(srvae, guide.guide, x, num_samples=100)
        kl = (terms.kl_u + terms.kl_z).sum().item()
    assert kl > 10
    assert full - b == pytest.approx((1 - beta) * kl, rel=0.1, abs=1.0)  # the KL really is scaled by β


def test_training_with_warmup_records_beta_and_reports_the_unscaled_elbo(digits):
    x = digits.test_images()
    srvae, guide = build(seed=2)
    history = train(srvae, guide, digits, make_objective("pyro", srvae, guide),
                    TrainingOptions(epochs=3, kl_warmup=2, monitor_test=True))
    assert [row["kl_scale"] for row in history] == [0.5, 1.0, 1.0]
    torch.manual_seed(0)
    unscaled = neg_elbo_per_image(srvae, guide, x)
    assert history[-1]["test_loss"] == pytest.approx(unscaled, abs=0.5)


def test_the_training_optimizer_is_fused_adam_with_adams_update():
    """``adam`` is Adam's update, m/(√v + ε) with both moments bias-corrected, checked
    against the formula in float64 over five steps of changing gradients."""
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(7, 3, generator=generator)
    grads = [torch.randn(7, 3, generator=generator) for _ in range(5)]
    param = torch.nn.Parameter(start.clone())
    optimizer = adam([param], lr=0.01)
    assert optimizer.param_groups[0]["fused"] is True
    value, m, v = start.double(), torch.zeros(7, 3, dtype=torch.float64), torch.zeros(7, 3, dtype=torch.float64)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t, grad in enumerate(grads, start=1):
        param.grad = grad.clone()
        optimizer.step()
        g = grad.double()
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g**2
        value = value - 0.01 * (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + eps)
    assert (param.detach().double() - value).abs().max().item() < 1e-6  # float32 rounding of steps of 0.01
