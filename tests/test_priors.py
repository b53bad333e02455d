"""Priors of SPEC §6: VampPrior, a flow prior, and a prior line edited by hand."""

import math
import types
from pathlib import Path

import pytest
import torch
from conftest import CONFIG, build
from torch.distributions import Independent, Normal, kl_divergence

import model.srvae
from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo
from experiment.config import RunConfig
from guides import build_guide
from model.elbo import explicit_elbo, mixture_kl_bound
from model.networks import Architecture
from model.priors import FlowPrior
from training.build import build_model_and_guide

ROOT = Path(__file__).resolve().parent.parent


def z_score(srvae, guide, x, **options):
    pyro_mean, pyro_se = pyro_neg_elbo(srvae, guide, x, num_particles=100, repeats=20)
    ex_mean, ex_se = explicit_neg_elbo(srvae, guide, x, num_samples=100, repeats=20, **options)["neg_elbo"]
    return (pyro_mean - ex_mean) / math.hypot(pyro_se, ex_se)


def test_vamp_prior_is_the_encoder_at_its_pseudo_inputs():
    srvae, guide = build(prior="vamp", components=5)
    prior = srvae.p_u()
    encoded = guide.q_u_given_y(srvae.p_u.pseudo_inputs)
    assert prior.mixture_distribution.logits.shape == (5,)
    torch.testing.assert_close(prior.component_distribution.base_dist.loc, encoded.base_dist.loc)
    assert ((srvae.p_u.pseudo_inputs >= 0) & (srvae.p_u.pseudo_inputs <= 1)).all()
    # the encoder is the guide's, registered in the prior too: the same parameters, trained once
    assert srvae.p_u.encoder is guide.q_u_given_y
    shared = {id(p) for p in srvae.parameters()} & {id(p) for p in guide.parameters()}
    assert len(shared) == len(list(guide.q_u_given_y.parameters())) > 0


def test_vamp_prior_with_one_pseudo_input_gives_the_closed_form(x):
    srvae, guide = build(prior="vamp", components=1)
    q = guide.q_u_given_y(guide.d(x))
    prior = srvae.p_u().expand((64,))
    component = guide.q_u_given_y(srvae.p_u.pseudo_inputs)
    exact = kl_divergence(q, Independent(Normal(component.base_dist.loc[0], component.base_dist.scale[0]), 1))
    torch.testing.assert_close(mixture_kl_bound(q, prior, "tight"), exact, rtol=1e-5, atol=1e-5)


def test_vamp_prior_explicit_elbo_is_a_bound_and_mc_agrees(x):
    srvae, guide = build(prior="vamp", components=6, seed=7)
    assert explicit_elbo(srvae, guide.guide, x).prior_kl_method == "tight bound"
    assert z_score(srvae, guide, x, mixture_kl="tight") < 4  # explicit −ELBO ≥ Pyro's, within error
    assert abs(z_score(srvae, guide, x, mixture_kl="mc")) < 4


def test_flow_prior_density_integrates_to_one():
    torch.manual_seed(0)
    prior = FlowPrior(2, layers=3, hidden=16)
    with torch.no_grad():
        for coupling in prior.couplings:  # move the flow away from the identity
            for p in coupling.parameters():
                p.add_(0.3 * torch.randn_like(p))
    grid = torch.linspace(-12, 12, 801)
    step = (grid[1] - grid[0]).item()
    points = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        mass = prior().log_prob(points).exp().sum().item() * step**2
    assert mass == pytest.approx(1.0, abs=2e-3)


def test_flow_prior_uses_a_monte_carlo_kl_that_agrees_with_pyro(x):
    srvae, guide = build(prior="flow", seed=8)
    assert explicit_elbo(srvae, guide.guide, x).prior_kl_method == "Monte Carlo"
    assert abs(z_score(srvae, guide, x)) < 4
    generated = srvae.model(num_images=3)
    assert generated.shape == (3, 1, 8, 8)


def test_a_prior_line_edited_in_the_source_is_followed(x):
    """Edit the model's prior line (by substitution in its source) to a Student-t prior, for which
    torch has no KL: the explicit ELBO falls back to Monte Carlo and still agrees with Pyro."""
    source = Path(model.srvae.__file__).read_text()
    line = 'u = pyro.sample("u", self.p_u())  # the prior p(u): edit this line to swap it'
    assert source.count(line) == 1
    edited_source = source.replace(line, 'u = pyro.sample("u", dist.StudentT(4.0, torch.zeros(self.latent_u), '
                                         '1.0).to_event(1))')
    edited = types.ModuleType("edited_srvae")
    exec(compile("import torch\nimport pyro.distributions as dist\n" + edited_source, "edited_srvae", "exec"),
         edited.__dict__)
    torch.manual_seed(9)
    guide = build_guide("amortized", (1, 8, 8), arch=Architecture(hidden=64))
    reference, _ = build_model_and_guide(RunConfig(**CONFIG), (1, 8, 8))
    srvae = edited.SRVAE((1, 8, 8), reference.p_u, arch=Architecture(hidden=64))
    assert explicit_elbo(srvae, guide.guide, x).prior_kl_method == "Monte Carlo"
    assert abs(z_score(srvae, guide, x)) < 4


@pytest.mark.parametrize("prior", ["vamp", "flow"])
def test_checkpoint_round_trip(prior, x, tmp_path):
    from training.checkpoint import load_checkpoint, save_checkpoint

    config = {**CONFIG, "prior": prior, "components": 4}
    srvae, guide = build_model_and_guide(RunConfig(**config), (1, 8, 8))
    save_checkpoint(tmp_path / "c.pt", srvae, guide, config)
    state = load_checkpoint(tmp_path / "c.pt")
    torch.manual_seed(10)
    again, again_guide = build_model_and_guide(RunConfig.from_dict(state["config"]), (1, 8, 8))
    again.load_state_dict(state["srvae"])
    again_guide.load_state_dict(state["guide"])
    with torch.no_grad():
        u = torch.randn(5, 4)
        torch.testing.assert_close(again.p_u().log_prob(u), srvae.p_u().log_prob(u))
