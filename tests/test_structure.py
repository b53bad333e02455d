"""Test 1 of the foundation issue: the model's and guide's sites, their order and shapes."""

import pyro.distributions as dist
import pytest
import torch
from conftest import build
from pyro import poutine

from data import downscale


def test_model_samples_u_y_z_x_in_order_with_image_event_shapes(x):
    srvae, guide = build()
    guide_trace = poutine.trace(guide.guide).get_trace(x)
    trace = poutine.trace(poutine.replay(srvae.model, trace=guide_trace)).get_trace(x)
    sites = [(n, s) for n, s in trace.nodes.items() if s["type"] == "sample" and n != "data"]
    assert [n for n, _ in sites] == ["u", "y", "z", "x"]
    shapes = {n: (tuple(s["fn"].batch_shape), tuple(s["fn"].event_shape)) for n, s in sites}
    assert shapes == {"u": ((64,), (4,)), "y": ((64,), (1, 4, 4)), "z": ((64,), (8,)), "x": ((64,), (1, 8, 8))}
    assert [n for n, s in sites if s["is_observed"]] == ["x"]


def test_guide_samples_y_as_a_delta_at_d_x_then_u_then_z(x):
    _, guide = build()
    trace = poutine.trace(guide.guide).get_trace(x)
    sites = [n for n, s in trace.nodes.items() if s["type"] == "sample" and n != "data"]
    assert sites == ["y", "u", "z"]
    y_site = trace.nodes["y"]
    assert isinstance(y_site["fn"], dist.Delta)
    assert torch.equal(y_site["value"], downscale(x))
    assert y_site["fn"].log_prob(y_site["value"]).abs().max().item() == 0.0


def test_paired_y_is_observed_in_the_model_and_absent_from_the_guide(x):
    srvae, guide = build()
    y = downscale(x)
    guide_trace = poutine.trace(guide.guide).get_trace(x, y)
    assert "y" not in guide_trace.nodes
    trace = poutine.trace(poutine.replay(srvae.model, trace=guide_trace)).get_trace(x, y)
    assert trace.nodes["y"]["is_observed"] and torch.equal(trace.nodes["y"]["value"], y)


def test_without_data_the_model_generates_u_y_z_x():
    srvae, _ = build()
    trace = poutine.trace(srvae.model).get_trace(num_images=5)
    assert trace.nodes["u"]["value"].shape == (5, 4)
    assert trace.nodes["y"]["value"].shape == (5, 1, 4, 4)
    assert trace.nodes["z"]["value"].shape == (5, 8)
    assert trace.nodes["x"]["value"].shape == (5, 1, 8, 8)
    assert not any(s["is_observed"] for s in trace.nodes.values() if s["type"] == "sample")


def test_gamma_has_a_floor_and_is_saved_with_the_model():
    srvae, _ = build(gamma_min=0.02)
    with torch.no_grad():
        srvae.p_x_given_yz.rho.fill_(-1e4)
    assert srvae.p_x_given_yz.gamma.item() == pytest.approx(0.02, rel=1e-6)  # exp(ρ) underflows to 0
    state = srvae.state_dict()
    assert {"p_x_given_yz.rho", "p_x_given_yz.gamma_min", "p_y_given_u.rho", "p_y_given_u.gamma_min"} <= set(state)
