"""Laplace decoders (``--likelihood laplace``): the explicit log-likelihood is the Laplace density, and
the explicit ELBO still equals Pyro's Trace_ELBO within Monte-Carlo error."""

import math

import pytest
import torch
from conftest import build
from torch.distributions import Laplace

from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo
from evaluation.superres import predictive_components
from model.likelihood import laplace_log_likelihood


@pytest.mark.parametrize("scale_shape", [(), (3, 1, 1), (2, 3, 5, 4)])
def test_the_explicit_laplace_log_likelihood_is_the_sum_of_the_pixels_log_densities(scale_shape):
    generator = torch.Generator().manual_seed(0)
    x, x_hat = torch.rand(2, 3, 5, 4, generator=generator), torch.rand(2, 3, 5, 4, generator=generator)
    scale = 0.01 + torch.rand(scale_shape, generator=generator)
    expected = Laplace(x_hat, scale.expand_as(x)).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(laplace_log_likelihood(x, x_hat, scale), expected, atol=1e-4, rtol=1e-6)


@pytest.mark.parametrize("noise", ["scalar", "pixel"])
def test_pyro_and_explicit_elbo_agree_with_laplace_decoders(digits, noise):
    """Both estimate the same ELBO; their difference is within 4 combined standard errors."""
    srvae, guide = build(likelihood="laplace", noise=noise, seed=3)
    assert srvae.p_x_given_yz.family == srvae.p_y_given_u.family == "laplace"
    x = digits.test_images()[:64]
    pyro_mean, pyro_se = pyro_neg_elbo(srvae, guide, x, num_particles=100, repeats=20)
    ex_mean, ex_se = explicit_neg_elbo(srvae, guide, x, num_samples=100, repeats=20)["neg_elbo"]
    assert abs(pyro_mean - ex_mean) < 4 * math.hypot(pyro_se, ex_se)


def test_super_resolution_draws_of_laplace_decoders_spread_as_their_scale_says(digits):
    """A Laplace's components are generalized normals of shape 1 and std √2·b (b = γ₁, one scale), and the
    draws around each component's mean have that std."""
    srvae, guide = build(likelihood="laplace", seed=1)
    y = guide.d(digits.test_images()[:32])
    torch.manual_seed(0)
    draws, means, mixture = predictive_components(srvae, guide, y, num_samples=50)
    b = srvae.p_x_given_yz.gamma.item()
    assert float(mixture.power) == 1.0 and torch.allclose(mixture.stddevs, torch.tensor(math.sqrt(2) * b))
    spread = (draws - means).std().item()
    standard_error = math.sqrt(2) * b * math.sqrt(5 / 4 / draws.numel())  # sd of a sample sd, kurtosis 6
    assert abs(spread - math.sqrt(2) * b) < 4 * standard_error


def test_gaussian_decoders_still_give_their_components_std(digits):
    srvae, guide = build(seed=1)
    y = guide.d(digits.test_images()[:4])
    _, _, mixture = predictive_components(srvae, guide, y, num_samples=3)
    assert mixture.power is None
    assert torch.allclose(mixture.stddevs, srvae.p_x_given_yz.gamma.expand_as(mixture.stddevs))
