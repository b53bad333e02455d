"""The discretized likelihood (SPEC §4, 'comparable numbers'): masses, not densities."""

import math

import pytest
import torch
from conftest import build

from data import downscale, quantize
from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo
from model.distributions import DiscretizedNormal
from model.elbo import explicit_elbo
from model.likelihood import discretized_gaussian_log_likelihood

LEVELS = 17
CENTRES = (torch.arange(LEVELS, dtype=torch.float64) + 0.5) / LEVELS


@pytest.mark.parametrize(("loc", "scale"), [(0.3, 0.05), (0.0, 0.01), (1.2, 0.02), (0.5, 3.0), (0.49, 1e-3)])
def test_bin_masses_sum_to_one(loc, scale):
    d = DiscretizedNormal(torch.tensor(loc, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64), LEVELS)
    assert torch.logsumexp(d.log_prob(CENTRES), 0).exp().item() == pytest.approx(1.0, abs=1e-7)


def test_mass_is_the_gaussian_integral_over_the_bin():
    normal = torch.distributions.Normal(torch.tensor(0.4, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64))
    d = DiscretizedNormal(normal.loc, normal.scale, LEVELS)
    edges = torch.arange(LEVELS + 1, dtype=torch.float64) / LEVELS
    inner = normal.cdf(edges[1:]) - normal.cdf(edges[:-1])
    inner[0], inner[-1] = normal.cdf(edges[1]), 1 - normal.cdf(edges[-2])  # the open-ended outer bins
    torch.testing.assert_close(d.log_prob(CENTRES).exp(), inner, rtol=1e-9, atol=1e-12)


def test_explicit_form_equals_the_distribution_and_is_at_most_zero():
    torch.manual_seed(0)
    x = quantize(torch.rand(6, 1, 8, 8), LEVELS)
    x_hat = torch.rand(6, 1, 8, 8)
    gamma = torch.tensor(0.07)
    explicit = discretized_gaussian_log_likelihood(x, x_hat, gamma, LEVELS)
    by_distribution = DiscretizedNormal(x_hat, gamma, LEVELS).to_event(3).log_prob(x)
    torch.testing.assert_close(explicit, by_distribution)
    assert (explicit <= 0).all()


@pytest.mark.parametrize("gamma", [1e-4, 1e-3, 0.1, 2.0])
def test_finite_values_and_gradients_in_the_tails(gamma):
    torch.manual_seed(1)
    x = quantize(torch.rand(200, 1, 2, 2), LEVELS)
    x_hat = (torch.rand(200, 1, 2, 2) * 1.4 - 0.2).requires_grad_()
    g = torch.tensor(gamma, requires_grad=True)
    value = discretized_gaussian_log_likelihood(x, x_hat, g, LEVELS).sum()
    value.backward()
    assert math.isfinite(value.item()) and torch.isfinite(x_hat.grad).all() and math.isfinite(g.grad.item())


def test_samples_are_bin_centres():
    d = DiscretizedNormal(torch.full((1000,), 0.5), torch.tensor(0.2), LEVELS)
    samples = d.sample((3,))
    assert samples.shape == (3, 1000)
    assert torch.allclose(quantize(samples, LEVELS), samples)


def test_y_is_d_x_rounded_to_the_same_grid(digits):
    srvae, guide = build(likelihood="discretized", levels=LEVELS)
    x = (digits.test_values[:8] + 0.5) / LEVELS
    y = guide.d(x)
    assert torch.allclose(y, quantize(downscale(x), LEVELS))
    assert srvae.p_x_given_yz.levels == LEVELS and srvae.p_y_given_u.levels == LEVELS


def test_pyro_and_explicit_elbo_agree_with_the_discretized_likelihood(digits):
    srvae, guide = build(likelihood="discretized", levels=LEVELS, seed=6)
    x = (digits.test_values[:64] + 0.5) / LEVELS
    pyro_mean, pyro_se = pyro_neg_elbo(srvae, guide, x, num_particles=100, repeats=20)
    ex_mean, ex_se = explicit_neg_elbo(srvae, guide, x, num_samples=100, repeats=20)["neg_elbo"]
    assert abs(pyro_mean - ex_mean) < 4 * math.hypot(pyro_se, ex_se)
    terms = explicit_elbo(srvae, guide.guide, x, num_samples=10)
    assert (terms.rec_x <= 0).all() and (terms.rec_y <= 0).all()  # log-masses
    assert (-terms.elbo >= 0).all()  # so −log P(x, y) ≥ 0, unlike a density's
