"""The objectives as modules: the compiled one and the opt-in param-store registration are the same ELBO."""

import math

import pyro
import torch
from conftest import build

from model.registration import Registered
from training.objectives import make_objective


def losses(objective, srvae, guide, x, draws=200):
    torch.manual_seed(1)
    loss = make_objective(objective, srvae, guide)
    with torch.no_grad():
        values = torch.stack([loss(x) for _ in range(draws)]).double() / len(x)
    return values.mean().item(), values.std().item() / math.sqrt(draws)


def test_jit_trace_elbo_estimates_the_same_elbo_as_trace_elbo(trained, x):
    srvae, guide = trained
    jit_mean, jit_se = losses("pyro-jit", srvae, guide, x)
    mean, se = losses("pyro", srvae, guide, x)
    assert abs(jit_mean - mean) < 4 * math.hypot(jit_se, se)


def test_jit_objective_trains(digits):
    srvae, guide = build()
    loss = make_objective("pyro-jit", srvae, guide)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-3)
    x = digits.test_images()[:64]
    first = loss(x).item()
    for _ in range(100):
        value = loss(x)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    assert loss(x).item() < first - 50 * len(x)  # nats per image


def test_registered_functions_train_with_pyros_svi_and_optimizer(digits):
    """The model and guide do not call pyro.module themselves; wrapped in ``Registered``, Pyro's SVI finds
    and trains every parameter through the param store."""
    from pyro.infer import SVI, Trace_ELBO

    srvae, guide = build()
    svi = SVI(Registered(srvae), Registered(guide), pyro.optim.Adam({"lr": 1e-3}),
              Trace_ELBO(max_plate_nesting=1))
    x = digits.test_images()[:64]
    before = svi.evaluate_loss(x)
    for _ in range(100):
        svi.step(x)
    assert svi.evaluate_loss(x) < before - 50 * len(x)
    names = set(pyro.get_param_store().keys())
    assert len(names) == len(list(srvae.parameters())) + len(list(guide.parameters()))


def test_the_benchmarks_plain_pytorch_elbo_is_the_explicit_elbo(trained, x):
    """bench/plain.py, the baseline Pyro's overhead is measured against, estimates the same −ELBO
    as the explicit ELBO of SPEC §4 (one draw per image each; 4 standard errors)."""
    from bench.plain import plain_neg_elbo

    srvae, guide = trained
    torch.manual_seed(2)
    with torch.no_grad():
        plain = torch.stack([plain_neg_elbo(srvae, guide, x) for _ in range(200)]).double() / len(x)
    mean, se = losses("explicit", srvae, guide, x)
    assert abs(plain.mean().item() - mean) < 4 * math.hypot(plain.std().item() / math.sqrt(200), se)


def test_every_objective_holds_the_parameters_of_model_and_guide_once(x):
    """The objectives are modules over model and guide (Pyro's ``Trace_ELBO()(model, guide)``): what a
    torch optimizer is given is every parameter of both, shared ones (a VampPrior's encoder) once."""
    srvae, guide = build(prior="vamp", components=3)
    expected = {id(p) for p in [*srvae.parameters(), *guide.parameters()]}
    for name in ("pyro", "pyro-jit", "explicit"):
        held = [id(p) for p in make_objective(name, srvae, guide).parameters()]
        assert len(held) == len(set(held)) and set(held) == expected, name
