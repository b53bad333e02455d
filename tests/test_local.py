"""The local guide (SPEC §5): per-datapoint parameters picked by index, fitted for new data."""

import math

import torch
from conftest import CONFIG, neg_elbo_per_image
from pyro import poutine

from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo
from experiment.config import RunConfig
from model.elbo import explicit_elbo
from training.build import build_model_and_guide
from training.loop import TrainingOptions, train
from training.objectives import make_objective


def build_local(digits, seed=0, **changes):
    torch.manual_seed(seed)
    config = {**CONFIG, "guide": "local", "train_images": len(digits.train_values), **changes}
    return build_model_and_guide(RunConfig(**config), (1, 8, 8))


def test_rows_are_picked_by_index(digits, x):
    _, guide = build_local(digits)
    with torch.no_grad():
        guide.u_loc.copy_(torch.randn_like(guide.u_loc))
    index = torch.tensor([5, 900, 17])
    trace = poutine.trace(guide.guide).get_trace(x[:3], index=index)
    torch.testing.assert_close(trace.nodes["u"]["fn"].base_dist.loc, guide.u_loc[index])
    assert guide.u_loc.shape == (len(digits.train_values), 4) and guide.z_loc.shape[1] == 8


def test_training_lowers_the_elbo_of_the_training_images(digits):
    srvae, guide = build_local(digits, seed=1)
    index = torch.arange(64)
    x = digits.train_batch(index)

    before = neg_elbo_per_image(srvae, guide, x, index=index)
    history = train(srvae, guide, digits, make_objective("pyro", srvae, guide),
                    TrainingOptions(epochs=5, lr=1e-2, monitor_test=True))
    assert before - neg_elbo_per_image(srvae, guide, x, index=index) > 100
    assert "test_loss" not in history[0]  # a local guide has no parameters for the test images


def test_fitted_test_parameters_beat_their_initial_values_and_leave_the_model_alone(digits, x):
    srvae, guide = build_local(digits, seed=2)
    before_model = {k: v.clone() for k, v in srvae.state_dict().items()}
    initial = guide.fitted_to(srvae, x, steps=1, lr=1e-9)  # fresh parameters, barely moved
    fitted = guide.fitted_to(srvae, x, steps=200)
    torch.manual_seed(0)
    with torch.no_grad():
        initial_value = -explicit_elbo(srvae, initial.guide, x, num_samples=32).elbo.mean().item()
        fitted_value = -explicit_elbo(srvae, fitted.guide, x, num_samples=32).elbo.mean().item()
    assert initial_value - fitted_value > 20, (initial_value, fitted_value)  # Monte-Carlo noise here < 1 nat
    assert all(torch.equal(before_model[k], v) for k, v in srvae.state_dict().items())
    assert guide.u_loc.shape[0] == len(digits.train_values)  # the trained guide is untouched


def test_pyro_and_explicit_elbo_agree_with_a_fitted_local_guide(digits, x):
    srvae, guide = build_local(digits, seed=3)
    fitted = guide.fitted_to(srvae, x, steps=100)
    pyro_mean, pyro_se = pyro_neg_elbo(srvae, fitted, x, num_particles=100, repeats=20, chunk=20)
    ex_mean, ex_se = explicit_neg_elbo(srvae, fitted, x, num_samples=100, repeats=20, chunk=20)["neg_elbo"]
    assert abs(pyro_mean - ex_mean) < 4 * math.hypot(pyro_se, ex_se)


def test_vamp_prior_owns_an_encoder_with_a_local_guide(digits, x):
    srvae, guide = build_local(digits, prior="vamp", components=3)
    assert guide.prior_encoder is None and isinstance(srvae.p_u.encoder, torch.nn.Module)
    assert not {id(p) for p in srvae.parameters()} & {id(p) for p in guide.parameters()}
    fitted = guide.fitted_to(srvae, x, steps=5)
    assert explicit_elbo(srvae, fitted.guide, x).prior_kl_method == "tight bound"
