"""The predictive mixture of the maps: its CDF is each family's, its quantiles invert it, and its central
intervals hold what they say when the truth is drawn from it."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from evaluation.mixture import PixelMixture, decoder_mixture
from model.distributions import GeneralizedNormal
from model.likelihood import generalized_normal_alpha


@pytest.mark.parametrize("power", [1.0, 1.4, 2.0, 3.0])
def test_the_generalized_normal_cdf_is_scipys(power):
    values = torch.linspace(-4, 5, 41, dtype=torch.float64)
    mixture = PixelMixture(torch.full((1, 41), 0.5, dtype=torch.float64), torch.full((1, 41), 1.3, dtype=torch.float64),
                           torch.tensor(power, dtype=torch.float64))
    double = {"dtype": torch.float64}
    alpha = float(generalized_normal_alpha(torch.tensor(1.3, **double), torch.tensor(power, **double)))
    expected = scipy.stats.gennorm.cdf(values.numpy(), power, loc=0.5, scale=alpha)
    np.testing.assert_allclose(mixture.cdf(values).numpy(), expected, atol=1e-10)


def test_the_gaussian_cdf_is_scipys():
    values = torch.linspace(-4, 5, 41, dtype=torch.float64)
    mixture = PixelMixture(torch.zeros(1, 41, dtype=torch.float64), torch.full((1, 41), 2.0, dtype=torch.float64))
    np.testing.assert_allclose(mixture.cdf(values).numpy(), scipy.stats.norm.cdf(values.numpy(), scale=2.0),
                               atol=1e-12)


@pytest.mark.parametrize("power", [None, 1.0, 1.5])
def test_the_quantiles_invert_the_mixtures_cdf(power):
    """For a mixture of components with spread-out means and scales, F(q_α) = α to within the bisection's
    precision, at every level the maps use."""
    generator = torch.Generator().manual_seed(0)
    means = torch.randn(16, 50, generator=generator, dtype=torch.float64) * 3
    stddevs = torch.rand(16, 50, generator=generator, dtype=torch.float64) + 0.05
    mixture = PixelMixture(means, stddevs, None if power is None else torch.tensor(power, dtype=torch.float64))
    for level in (0.05, 0.5, 0.95):
        assert torch.allclose(mixture.cdf(mixture.quantile(level, steps=40)), torch.tensor(level, dtype=torch.float64),
                              atol=1e-6)


@pytest.mark.parametrize("power", [1.0, 1.2, 2.0])
def test_intervals_from_few_components_hold_their_level(power):
    """The truth drawn from the predictive (a component at random, then a draw from it) lies in the central
    90 % interval of the mixture of S = 4 components 90 % of the time; the empirical 5–95 % interval of 4
    draws would hold it 60 % ((S·α − 1)/(S + 1)). Tolerance: 4 standard errors of a proportion."""
    torch.manual_seed(1)
    pixels, components = 40_000, 4
    means = torch.randn(components, pixels) * 0.5
    stddevs = torch.rand(components, pixels) * 0.5 + 0.1
    shape = torch.tensor(power)
    which = torch.randint(0, components, (pixels,))
    picked = torch.arange(pixels)
    truth = GeneralizedNormal(means[which, picked], stddevs[which, picked], shape).sample()
    mixture = PixelMixture(means, stddevs, shape)
    low, high = mixture.quantile(0.05), mixture.quantile(0.95)
    held = ((truth >= low) & (truth <= high)).double().mean().item()
    assert abs(held - 0.9) < 4 * math.sqrt(0.9 * 0.1 / pixels)
    assert held == pytest.approx(mixture.interval_holds(truth, 0.9).double().mean().item(), abs=1e-3)


def test_each_decoder_family_gives_its_components():
    value = torch.zeros(3, 2)
    independent = torch.distributions.Independent(torch.distributions.Laplace(torch.ones(3, 2), 0.5), 1)
    laplace = decoder_mixture(independent, value)
    assert torch.allclose(laplace.stddevs, torch.tensor(math.sqrt(2) * 0.5)) and float(laplace.power) == 1.0
    x = torch.tensor([[0.3, 1.7]])
    assert torch.allclose(laplace.component_cdf(x), torch.distributions.Laplace(torch.ones(3, 2), 0.5).cdf(x))
    gaussian = decoder_mixture(torch.distributions.Normal(torch.zeros(3, 2), 2.0), value)
    assert gaussian.power is None and torch.allclose(gaussian.stddevs, torch.tensor(2.0))
    gennorm = decoder_mixture(GeneralizedNormal(torch.zeros(3, 2), 1.0, torch.tensor(1.5)), value)
    assert torch.allclose(gennorm.power, torch.tensor(1.5))


@pytest.mark.parametrize("likelihood", ["gennorm", "laplace", "gaussian"])
def test_the_maps_cover_as_the_evaluations_pit_says(likelihood):
    """For the same model and tiles, the share of x inside the maps' 5–95 % quantiles (the mixture of 16 draws'
    components, as ``superresolve.py`` writes them) and run.py's 90 % coverage (the randomized PIT of 100 draws
    of x) agree within 0.02: two estimates of one predictive's coverage, each with a standard error near 0.003
    over these 12 288 pixels. σ is set near the error of bicubic, so the coverage is far from 0 and 1."""
    from conftest import CONFIG

    from data import downscale, upsample
    from evaluation.superres import evaluate_superres, predictive_components
    from evaluation.tiles import summarise
    from experiment.config import RunConfig
    from training.build import build_model_and_guide

    torch.manual_seed(0)
    config = RunConfig(**{**CONFIG, "arch": "conv", "noise": "pixel", "scale_network": True, "channels": 8,
                          "likelihood": likelihood, "image_shape": [3, 16, 16]})
    model, guide = build_model_and_guide(config, config.image_shape)
    coarse = torch.rand(16, 3, 4, 4)
    x = (upsample(coarse, 4, "bicubic") + 0.05 * torch.randn(16, 3, 16, 16)).clamp(0, 1)
    y = downscale(x)
    error = (upsample(y, 2, "bicubic") - x).std().item()
    with torch.no_grad():
        model.p_x_given_yz.rho.fill_(math.log(0.7 * error))
    metrics = evaluate_superres(model, guide, x, y, 2, num_samples=100)
    draws, means, mixture = predictive_components(model, guide, y, 16)
    maps = summarise(draws, means, mixture, keep=0)
    held = ((maps["q05"] <= x) & (x <= maps["q95"])).double().mean().item()
    assert 0.3 < held < 0.97
    assert abs(held - metrics["coverage_90"]) < 0.02
