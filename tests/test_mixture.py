"""Test 5: KL to a mixture prior (SPEC §4): Monte Carlo ≤ tight bound ≤ convexity bound; K = 1 is exact."""

import pytest
import torch
from conftest import build, mean_and_se
from torch.distributions import Independent, Normal, kl_divergence

from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo
from model.elbo import kl_to_prior, mixture_kl_bound
from model.priors import MixtureOfGaussiansPrior

SAMPLES = 20_000


def q_and_mixture(components, seed=1):
    torch.manual_seed(seed)
    prior = MixtureOfGaussiansPrior(4, components)
    with torch.no_grad():
        prior.means.mul_(1.5)
        prior.logits.copy_(torch.randn(components))
    q = Independent(Normal(torch.randn(8, 4), torch.rand(8, 4) * 0.5 + 0.2), 1)
    return q, prior().expand((8,))


def monte_carlo_kl(q, p):
    u = q.sample((SAMPLES,))
    values = q.log_prob(u) - p.log_prob(u)
    return values.mean(0), values.std(0) / SAMPLES**0.5


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_monte_carlo_le_tight_le_convexity(seed):
    q, p = q_and_mixture(components=5, seed=seed)
    tight, convexity = mixture_kl_bound(q, p, "tight"), mixture_kl_bound(q, p, "convexity")
    mc, se = monte_carlo_kl(q, p)
    assert (mc <= tight + 4 * se).all()
    assert (tight <= convexity + 1e-5).all()
    assert (convexity - tight).max() > 0.1  # the bounds are not trivially the same


def test_one_component_gives_the_closed_form():
    q, p = q_and_mixture(components=1)
    component = Independent(Normal(p.component_distribution.base_dist.loc[..., 0, :],
                                   p.component_distribution.base_dist.scale[..., 0, :]), 1)
    exact = kl_divergence(q, component)
    torch.testing.assert_close(mixture_kl_bound(q, p, "tight"), exact, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixture_kl_bound(q, p, "convexity"), exact, rtol=1e-5, atol=1e-5)
    mc, se = monte_carlo_kl(q, p)
    assert ((mc - exact).abs() < 4 * se).all()


def test_kl_to_prior_names_its_method():
    q, p = q_and_mixture(components=3)
    u = q.sample((2,))
    assert kl_to_prior(q, p, u, "tight")[1] == "tight bound"
    assert kl_to_prior(q, p, u, "convexity")[1] == "convexity bound"
    assert kl_to_prior(q, p, u, "mc")[1] == "Monte Carlo"
    standard = Independent(Normal(torch.zeros(4), torch.ones(4)), 1).expand((8,))
    assert kl_to_prior(q, standard, u)[1] == "closed form"


def test_explicit_elbo_with_a_mixture_prior_is_a_lower_bound_of_pyros(x):
    """Analytic KL bounds make the explicit −ELBO ≥ Pyro's Monte-Carlo −ELBO; with a Monte-Carlo
    KL_u the two estimate the same number."""
    srvae, guide = build(prior="mog", seed=2, components=4)
    pyro_mean, pyro_se = pyro_neg_elbo(srvae, guide, x, num_particles=100, repeats=20)
    for kind in ("tight", "convexity"):
        ex_mean, ex_se = explicit_neg_elbo(srvae, guide, x, num_samples=100, repeats=20, mixture_kl=kind)["neg_elbo"]
        assert ex_mean >= pyro_mean - 4 * (pyro_se**2 + ex_se**2) ** 0.5
    ex_mean, ex_se = explicit_neg_elbo(srvae, guide, x, num_samples=100, repeats=20, mixture_kl="mc")["neg_elbo"]
    assert abs(ex_mean - pyro_mean) < 4 * (pyro_se**2 + ex_se**2) ** 0.5


def test_mean_and_se_helper():
    assert mean_and_se([1.0, 3.0]) == pytest.approx((2.0, 1.0))
