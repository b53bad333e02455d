"""Tests 3, 4 and 6: Pyro's Trace_ELBO against the explicit ELBO of SPEC §4, per batch."""

import math

import pyro.distributions as dist
import pytest
import torch
from conftest import build

import model.conditionals
from data import downscale
from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo
from model.elbo import explicit_elbo

PARTICLES, REPEATS = 100, 20


def z_score(srvae, guide, x, **explicit_options) -> float:
    """(Pyro − explicit) −ELBO per image, in standard errors of the difference."""
    pyro_mean, pyro_se = pyro_neg_elbo(srvae, guide, x, num_particles=PARTICLES, repeats=REPEATS)
    explicit = explicit_neg_elbo(srvae, guide, x, num_samples=PARTICLES, repeats=REPEATS, **explicit_options)
    ex_mean, ex_se = explicit["neg_elbo"]
    return (pyro_mean - ex_mean) / math.hypot(pyro_se, ex_se)


def test_agrees_with_trace_elbo_at_initialisation(x):
    srvae, guide = build(seed=3)
    assert abs(z_score(srvae, guide, x)) < 4


def test_agrees_with_trace_elbo_after_training(trained, x):
    srvae, guide = trained
    assert abs(z_score(srvae, guide, x)) < 4


def wrong_k(x, x_hat, gamma):
    """k_x and k_y swapped: the mistake of seed eq. 16, which uses one k for both images."""
    k = x.shape[-3:].numel()
    k = 16 if k == 64 else 64
    mse = (x - x_hat).pow(2).flatten(-3).mean(-1)
    return -0.5 * k * math.log(2 * math.pi) - k * torch.log(gamma) - k * mse / (2 * gamma**2)


def seed_typo(x, x_hat, gamma):
    """Seed eq. 16 as printed: k/(2γ) instead of k/(2γ²)."""
    k = x.shape[-3:].numel()
    mse = (x - x_hat).pow(2).flatten(-3).mean(-1)
    return -0.5 * k * math.log(2 * math.pi) - k * torch.log(gamma) - k * mse / (2 * gamma)


@pytest.mark.parametrize("mistake", [wrong_k, seed_typo])
def test_the_same_check_detects_a_wrong_term(trained, x, monkeypatch, mistake):
    srvae, guide = trained
    monkeypatch.setattr(model.conditionals, "gaussian_log_likelihood", mistake)  # what the decoders call
    assert abs(z_score(srvae, guide, x)) > 4


def test_observing_y_in_the_model_gives_the_same_elbo(trained, x):
    """SPEC §3: the Delta guide site contributes log 1 = 0, so observing y instead changes nothing."""
    srvae, guide = trained
    y = downscale(x)
    values = {}
    for name, args in {"delta": (x, None), "observed": (x, y)}.items():
        torch.manual_seed(7)
        pyro_value = pyro_neg_elbo(srvae, guide, *args, num_particles=10, repeats=2)[0]
        torch.manual_seed(7)
        explicit_value = explicit_elbo(srvae, guide.guide, *args, num_samples=10).elbo.sum().item()
        values[name] = (pyro_value, explicit_value)
    torch.testing.assert_close(values["delta"], values["observed"], rtol=1e-6, atol=1e-4)


def test_every_term_is_reported_and_the_kls_are_non_negative(trained, x):
    srvae, guide = trained
    terms = explicit_elbo(srvae, guide.guide, x, num_samples=8)
    assert terms.prior_kl_method == "closed form"
    for term in (terms.rec_x, terms.rec_y, terms.kl_u, terms.kl_z):
        assert term.shape == (64,) and torch.isfinite(term).all()
    assert (terms.kl_u >= 0).all() and (terms.kl_z >= 0).all()
    torch.testing.assert_close(terms.elbo, terms.rec_x + terms.rec_y - terms.kl_u - terms.kl_z)


def test_explicit_elbo_is_differentiable(x):
    srvae, guide = build()
    loss = -explicit_elbo(srvae, guide.guide, x).elbo.sum()
    loss.backward()
    grads = [p.grad for p in [*srvae.parameters(), *guide.parameters()]]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert srvae.p_x_given_yz.rho.grad.abs().item() > 0


class StudentTPrior(torch.nn.Module):
    """What a user gets by editing the prior line to a distribution torch has no KL for."""

    def __init__(self, latent_dim):
        super().__init__()
        self.register_buffer("loc", torch.zeros(latent_dim))

    def forward(self):
        return dist.StudentT(3.0, self.loc, 1.0).to_event(1)


def test_an_edited_prior_is_followed_with_a_monte_carlo_kl(x):
    srvae, guide = build(seed=4)
    srvae.p_u = StudentTPrior(4)
    assert explicit_elbo(srvae, guide.guide, x).prior_kl_method == "Monte Carlo"
    assert abs(z_score(srvae, guide, x)) < 4
