"""Test 2: the Gaussian log-likelihood equals torch's Normal.log_prob and the corrected seed eq. 16."""

import math

import pytest
import torch

from model.likelihood import gaussian_log_likelihood


@pytest.mark.parametrize("shape", [(5, 1, 8, 8), (5, 1, 4, 4), (3, 2, 5, 3, 6)])
@pytest.mark.parametrize("gamma", [0.05, 0.3, 2.0])
def test_equals_normal_log_prob_and_the_corrected_eq_16(shape, gamma):
    torch.manual_seed(0)
    x, x_hat = torch.rand(shape, dtype=torch.float64), torch.rand(shape, dtype=torch.float64)
    g = torch.tensor(gamma, dtype=torch.float64)
    ours = gaussian_log_likelihood(x, x_hat, g)

    by_torch = torch.distributions.Normal(x_hat, g).log_prob(x).flatten(-3).sum(-1)
    k = math.prod(shape[-3:])
    mse = ((x - x_hat) ** 2).flatten(-3).sum(-1) / k  # eq. 15 with its square
    eq_16 = -(k * math.log(gamma) + k / (2 * gamma**2) * mse) - k / 2 * math.log(2 * math.pi)

    assert ours.shape == shape[:-3]
    torch.testing.assert_close(ours, by_torch, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(ours, eq_16, rtol=1e-12, atol=1e-9)


def test_the_uncorrected_eq_16_differs():
    """The seed's k/(2γ) coefficient (no square) would not give the log-density: the fix matters."""
    x, x_hat, gamma = torch.full((1, 1, 2, 2), 0.9), torch.full((1, 1, 2, 2), 0.1), torch.tensor(0.1)
    k, mse = 4, 0.64
    seed_typo = -(k * math.log(0.1) + k / (2 * 0.1) * mse) - k / 2 * math.log(2 * math.pi)
    assert abs(gaussian_log_likelihood(x, x_hat, gamma).item() - seed_typo) > 100
