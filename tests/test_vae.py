"""The plain VAE baseline: the same framework, p(x|z) p(z), and its super-resolution."""

import math

import pytest
import torch
from conftest import CONFIG
from pyro import poutine

from data import downscale
from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo
from evaluation.loglik import importance_weighted_log_likelihood
from evaluation.superres import fit_posterior_given_y, super_resolve
from experiment.config import RunConfig
from model.elbo import explicit_elbo
from training.build import build_model_and_guide
from training.loop import TrainingOptions, train
from training.objectives import make_objective


def build_vae(seed=0, **changes):
    torch.manual_seed(seed)
    return build_model_and_guide(RunConfig(**{**CONFIG, "model": "vae", **changes}), (1, 8, 8))


@pytest.fixture(scope="module")
def trained_vae(digits):
    vae, guide = build_vae(seed=1)
    train(vae, guide, digits, make_objective("pyro", vae, guide), TrainingOptions(epochs=30))
    return vae, guide


def test_sites_and_latent_budget(x):
    vae, guide = build_vae()
    guide_trace = poutine.trace(guide.guide).get_trace(x)
    trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    assert [n for n, s in trace.nodes.items() if s["type"] == "sample" and n != "data"] == ["z", "x"]
    assert trace.nodes["z"]["value"].shape == (64, 12)  # L_u + L_z
    given_y = poutine.trace(vae.model).get_trace(None, downscale(x))
    assert [n for n, s in given_y.nodes.items() if s["type"] == "sample" and n != "data"] == ["z", "y", "x"]
    assert given_y.nodes["y"]["is_observed"]


@pytest.mark.parametrize("mode", ["area", "bicubic"])
def test_p_y_given_z_is_the_law_of_d_of_x(mode):
    """y = d(x), x ~ p(x|z): mean d(x̂) and standard deviation γ·‖row of d‖, within 4 standard errors."""
    vae, _ = build_vae(downscale=mode, gamma_init=0.2)
    z = torch.randn(1, 12)
    with torch.no_grad():
        x = vae.p_x_given_z(z).sample((20_000,))
        law = vae.p_y_given_z(z).base_dist
    y = downscale(x, 2, mode)
    n = y.shape[0]
    assert ((y.mean(0) - law.loc).abs() < 4 * law.scale / math.sqrt(n)).all()
    assert ((y.std(0) - law.scale).abs() < 4 * law.scale / math.sqrt(2 * n)).all()
    if mode == "area":
        torch.testing.assert_close(law.scale, torch.full_like(law.scale, 0.1))  # γ/s


def test_pyro_and_explicit_elbo_agree_and_iw_is_above(trained_vae, x):
    vae, guide = trained_vae
    pyro_mean, pyro_se = pyro_neg_elbo(vae, guide, x, num_particles=100, repeats=20)
    ex_mean, ex_se = explicit_neg_elbo(vae, guide, x, num_samples=100, repeats=20)["neg_elbo"]
    assert abs(pyro_mean - ex_mean) < 4 * math.hypot(pyro_se, ex_se)
    terms = explicit_elbo(vae, guide.guide, x, num_samples=4)
    assert terms.prior_kl_method == "closed form" and (terms.rec_y == 0).all() and (terms.kl_u == 0).all()
    torch.manual_seed(0)
    iw = importance_weighted_log_likelihood(vae, guide, x, num_samples=500)
    assert (iw.mean() + ex_mean).item() > 0.5  # log p(x) estimate above the ELBO


def test_fitted_posterior_explains_y_and_super_resolves_better(trained_vae, x):
    """The encoder never saw y: given bicubic(y) its draws explain y poorly. The Gaussian fitted to
    p(z | y) by SVI raises log p(y | z) by over 5 nats per image and brings the SR mean closer to x."""
    vae, guide = trained_vae
    y = downscale(x)
    torch.manual_seed(0)
    with torch.no_grad():
        z_raw = poutine.trace(guide.guide).get_trace(None, y).nodes["z"]["value"]
        fit_raw = vae.p_y_given_z(z_raw).log_prob(y).mean().item()
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    posterior = fit_posterior_given_y(vae, y, steps=150)
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())  # the model stays as it is
    with torch.no_grad():
        z_fit = poutine.trace(posterior).get_trace(None, y).nodes["z"]["value"]
        fit_fitted = vae.p_y_given_z(z_fit).log_prob(y).mean().item()
    assert fit_fitted > fit_raw + 5, (fit_fitted, fit_raw)
    raw = super_resolve(vae, guide, y, num_samples=50)
    fitted = super_resolve(vae, guide, y, num_samples=50, proposals=200, fit_steps=150)
    assert ((fitted.mean(0) - x) ** 2).mean() < ((raw.mean(0) - x) ** 2).mean()


@pytest.mark.parametrize(("shape", "scale", "mode"), [((1, 8, 8), 2, "area"), ((3, 12, 16), 4, "area"),
                                                      ((1, 8, 8), 2, "bicubic"), ((2, 16, 12), 4, "bicubic")])
def test_row_norms_of_d_match_applying_d_to_every_basis_image(shape, scale, mode):
    """The separable O(H²W + W²H) computation equals the brute-force one over all k_x basis images
    (d without its clamp: the law of d(x) is that of the linear map)."""
    from torch.nn import functional as F

    from data.downscale import row_norms

    k = math.prod(shape)
    options = {"mode": "area"} if mode == "area" else {"mode": "bicubic", "antialias": True, "align_corners": False}
    brute = F.interpolate(torch.eye(k).reshape(k, *shape), scale_factor=1 / scale, **options).pow(2).sum(0).sqrt()
    torch.testing.assert_close(row_norms(shape, scale, mode), brute, atol=1e-6, rtol=1e-6)
