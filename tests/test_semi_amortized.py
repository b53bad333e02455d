"""The semi-amortized guide (SPEC §5): encoder output refined by gradient steps of the ELBO."""

import math

import torch
from conftest import CONFIG, neg_elbo_per_image
from pyro import poutine

from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo
from experiment.config import RunConfig
from training.build import build_model_and_guide
from training.objectives import make_objective


def build_semi(seed=0, steps=5, lr=0.01, **changes):
    torch.manual_seed(seed)
    config = {**CONFIG, "guide": "semi-amortized", "refine_steps": steps, "refine_lr": lr, **changes}
    return build_model_and_guide(RunConfig(**config), (1, 8, 8))


def test_refinement_raises_the_batch_elbo_over_the_encoders(x):
    srvae, guide = build_semi(seed=1)
    guide.refine_steps = 0
    encoder_only = neg_elbo_per_image(srvae, guide, x, num_samples=64)
    guide.refine_steps = 20
    refined = neg_elbo_per_image(srvae, guide, x, num_samples=64)
    assert encoder_only - refined > 5, (encoder_only, refined)  # Monte-Carlo noise here < 1 nat


def test_gradients_reach_the_model_and_the_encoders(x):
    srvae, guide = build_semi(seed=2)
    make_objective("pyro", srvae, guide)(x).backward()
    assert guide.q_u_given_y.gaussian.net[0].weight.grad.abs().sum() > 0  # straight-through to the encoder
    assert guide.q_z_given_x.gaussian.net[0].weight.grad.abs().sum() > 0
    assert srvae.p_x_given_yz.rho.grad.abs() > 0


def test_pyro_and_explicit_elbo_agree(x):
    srvae, guide = build_semi(seed=3)
    pyro_mean, pyro_se = pyro_neg_elbo(srvae, guide, x, num_particles=100, repeats=20)
    ex_mean, ex_se = explicit_neg_elbo(srvae, guide, x, num_samples=100, repeats=20)["neg_elbo"]
    assert abs(pyro_mean - ex_mean) < 4 * math.hypot(pyro_se, ex_se)


def test_given_y_alone_the_encoder_supplies_u_unrefined(x):
    _, guide = build_semi(seed=4)
    y = guide.d(x)
    trace = poutine.trace(guide.guide).get_trace(None, y)
    assert [n for n, s in trace.nodes.items() if s["type"] == "sample" and n != "data"] == ["u"]
    torch.testing.assert_close(trace.nodes["u"]["fn"].base_dist.loc, guide.q_u_given_y(y).base_dist.loc)


def test_refinement_stays_finite_with_a_far_too_large_step(x):
    """Each inner move is clipped to ±0.5 and non-finite moves are dropped, so no step size blows it up."""
    _, guide = build_semi(seed=5, steps=10, lr=1e3, prior="flow")
    trace = poutine.trace(guide.guide).get_trace(x)
    for name in ("u", "z"):
        scale = trace.nodes[name]["fn"].base_dist.scale
        assert torch.isfinite(scale).all() and (scale > 0).all()
