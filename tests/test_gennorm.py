"""Generalized-normal decoders (``--likelihood gennorm``): the density is the generalized normal (scipy's,
and the Gaussian and the Laplace at p = 2 and 1), its draws have its spread, its shape is learned, and
the explicit ELBO still equals Pyro's Trace_ELBO within Monte-Carlo error."""

import math

import pytest
import torch
from conftest import build
from scipy import stats
from torch.distributions import Laplace, Normal

from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo
from evaluation.superres import predictive_components
from experiment.config import RunConfig
from model.conditionals import POWER_GAIN
from model.distributions import GeneralizedNormal
from model.likelihood import generalized_normal_alpha, generalized_normal_log_likelihood
from training.build import build_model_and_guide
from training.warmup import PixelWeighted


@pytest.mark.parametrize("power", [1.0, 1.4, 2.0, 3.5])
def test_the_log_density_is_scipys_generalized_normal_of_that_std(power):
    generator = torch.Generator().manual_seed(0)
    x, loc = torch.randn(50, generator=generator, dtype=torch.float64), torch.randn(50, generator=generator,
                                                                                     dtype=torch.float64)
    std = 0.1 + torch.rand(50, generator=generator, dtype=torch.float64)
    p = torch.tensor(power, dtype=torch.float64)
    alpha = generalized_normal_alpha(std, p)
    expected = stats.gennorm.logpdf(x.numpy(), power, loc=loc.numpy(), scale=alpha.numpy())
    assert torch.allclose(GeneralizedNormal(loc, std, p).log_prob(x), torch.from_numpy(expected), atol=1e-10)
    assert torch.allclose(alpha.pow(2) * torch.exp(torch.lgamma(3 / p) - torch.lgamma(1 / p)), std.pow(2))


def test_p_2_is_the_gaussian_and_p_1_the_laplace_of_the_same_std():
    generator = torch.Generator().manual_seed(1)
    x, x_hat = torch.rand(2, 3, 5, 4, generator=generator), torch.rand(2, 3, 5, 4, generator=generator)
    std = 0.01 + torch.rand(3, 1, 1, generator=generator)
    gaussian = Normal(x_hat, std.expand_as(x)).log_prob(x).flatten(1).sum(1)
    laplace = Laplace(x_hat, std.expand_as(x) / math.sqrt(2)).log_prob(x).flatten(1).sum(1)
    for power, expected in ((2.0, gaussian), (1.0, laplace)):
        got = generalized_normal_log_likelihood(x, x_hat, std, torch.full((3, 1, 1), power))
        assert torch.allclose(got, expected, atol=1e-3, rtol=1e-5)


def test_the_gradient_in_p_is_finite_where_a_pixel_is_exactly_at_its_mean():
    power = torch.tensor(1.5, requires_grad=True)
    GeneralizedNormal(torch.zeros(3), torch.ones(3), power).log_prob(torch.tensor([0.0, 0.5, -1.0])).sum().backward()
    assert torch.isfinite(power.grad)


@pytest.mark.parametrize("power", [1.0, 1.5, 3.0])
def test_draws_have_the_std_and_the_absolute_moment_the_shape_says(power):
    """E|x − μ| = α·Γ(2/p)/Γ(1/p) tells the shapes apart at one std; tolerances are 4 standard errors."""
    torch.manual_seed(0)
    n, std, p = 200_000, 0.3, torch.tensor(power)
    draws = GeneralizedNormal(torch.zeros(n), torch.full((n,), std), p).sample()
    alpha = generalized_normal_alpha(torch.tensor(std), p)
    mean_abs = (alpha * torch.exp(torch.lgamma(2 / p) - torch.lgamma(1 / p))).item()
    assert abs(draws.mean().item()) < 4 * std / math.sqrt(n)
    assert abs(draws.abs().mean().item() - mean_abs) < 4 * math.sqrt(std**2 - mean_abs**2) / math.sqrt(n)
    fourth = (alpha**4 * torch.exp(torch.lgamma(5 / p) - torch.lgamma(1 / p))).item()
    assert abs(draws.pow(2).mean().item() - std**2) < 4 * math.sqrt(fourth - std**4) / math.sqrt(n)


@pytest.mark.parametrize("noise", ["scalar", "pixel"])
def test_pyro_and_explicit_elbo_agree_with_generalized_normal_decoders(digits, noise):
    """Both estimate the same ELBO, at a shape away from 2 (p = 1.3 for x, 2.8 for y); their difference
    is within 4 combined standard errors."""
    srvae, guide = build(likelihood="gennorm", noise=noise, seed=3)
    assert srvae.p_x_given_yz.family == srvae.p_y_given_u.family == "gennorm"
    with torch.no_grad():
        srvae.p_x_given_yz.power_logit.fill_(math.log(0.3 / 2.7) / POWER_GAIN)
        srvae.p_y_given_u.power_logit.fill_(math.log(1.8 / 1.2) / POWER_GAIN)
    assert torch.allclose(srvae.p_x_given_yz.power, torch.tensor(1.3))
    x = digits.test_images()[:64]
    pyro_mean, pyro_se = pyro_neg_elbo(srvae, guide, x, num_particles=100, repeats=20)
    ex_mean, ex_se = explicit_neg_elbo(srvae, guide, x, num_samples=100, repeats=20)["neg_elbo"]
    assert abs(pyro_mean - ex_mean) < 4 * math.hypot(pyro_se, ex_se)


def test_the_shape_starts_gaussian_and_is_a_learned_parameter_per_band(digits):
    srvae, _ = build(likelihood="gennorm")
    decoder = srvae.p_x_given_yz
    assert torch.allclose(decoder.power, torch.full((1, 1, 1), 2.0))
    assert any(parameter is decoder.power_logit for parameter in srvae.parameters())
    assert "p_x_given_yz.power_logit" in srvae.state_dict()
    assert set(srvae.gammas()) == {"gamma_x", "gamma_y", "power_x", "power_y"}


def test_beta_nll_weights_are_alpha_to_the_p_beta():
    """At β = 1 each pixel's gradient in the mean is p·|r|^{p−1}·sign(r)/mean α^p: the gradient of Σ|r|^p
    over the batch, whatever each pixel's α."""
    loc = torch.zeros(1, 1, 2, 2, requires_grad=True)
    std = torch.tensor([[[[0.1, 0.2], [0.4, 0.8]]]])
    p = torch.tensor(1.5)
    value = torch.tensor([[[[0.3, -0.2, 0.1, 0.5]]]]).reshape(1, 1, 2, 2)
    fn = GeneralizedNormal(loc, std, p).to_event(3)
    PixelWeighted(fn, beta=1.0).log_prob(value).sum().backward()
    alpha_p = generalized_normal_alpha(std, p).pow(p)
    expected = p * value.abs().pow(p - 1) * value.sign() / alpha_p.mean()
    assert torch.allclose(loc.grad, expected, rtol=1e-5)


def test_super_resolution_of_gennorm_decoders_gives_their_components(digits):
    """The draws' components are generalized normals of the decoder's std and shape, so the maps' quantiles
    are those of their mixture, not of a few draws."""
    srvae, guide = build(likelihood="gennorm", seed=1)
    y = guide.d(digits.test_images()[:4])
    draws, means, mixture = predictive_components(srvae, guide, y, num_samples=3)
    assert draws.shape == means.shape == mixture.means.shape == (3, 4, 1, 8, 8)
    assert torch.equal(mixture.means, means)
    assert torch.allclose(mixture.power, srvae.p_x_given_yz.power.expand_as(means))


@pytest.mark.parametrize("model, arch, noise, given, family", [
    ("srvae", "conv", "auto", "auto", "gennorm"),  # the conv SRVAE's per-pixel scale
    ("srvae", "mlp", "pixel", "auto", "gennorm"),
    ("srvae", "mlp", "auto", "auto", "gaussian"),  # the digits: the seed's γ and Gaussians
    ("srvae", "conv", "scalar", "auto", "gaussian"),
    ("srvae", "conv", "auto", "gaussian", "gaussian"),  # a flag wins
    ("srvae", "mlp", "auto", "laplace", "laplace"),
    ("vae", "conv", "auto", "auto", "gaussian")])
def test_the_likelihood_is_gennorm_by_default_where_x_has_a_per_pixel_scale(model, arch, noise, given, family):
    config = RunConfig(model=model, arch=arch, noise=noise, likelihood=given, channels=4, hidden=16)
    assert config.likelihood_for(config.noise_for(arch)) == family
    if model == "srvae":
        srvae, _ = build_model_and_guide(config, (2, 8, 8))
        assert srvae.p_x_given_yz.family == srvae.p_y_given_u.family == family
