"""Architectures: the convolutional networks keep the model's math (shapes, the explicit
ELBO against Pyro's), learn, and the decoder of x really uses y."""

import pyro
import pytest
import torch
from conftest import CONFIG
from pyro import poutine
from test_elbo import z_score

from data import downscale
from experiment.config import RunConfig
from model.conv import halvings
from model.networks import default_architecture
from training.build import build_model_and_guide
from training.objectives import make_objective

CONV = {**CONFIG, "arch": "conv", "channels": 8, "blocks": 1, "hidden": 32}


def conv_model(shape, scale=2, seed=0, **changes):
    pyro.set_rng_seed(seed)
    return build_model_and_guide(RunConfig(**{**CONV, "scale": scale, **changes}), shape)


def images(shape, n=16, seed=0):
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("shape", "scale"), [((1, 28, 28), 2), ((1, 28, 28), 4), ((3, 32, 32), 2),
                                              ((4, 16, 16), 4)])
def test_conv_sites_have_the_image_shapes_for_any_band_count(shape, scale):
    srvae, guide = conv_model(shape, scale)
    x = images(shape, 5)
    guide_trace = poutine.trace(guide.guide).get_trace(x)
    trace = poutine.trace(poutine.replay(srvae.model, trace=guide_trace)).get_trace(x)
    y_shape = (shape[0], shape[1] // scale, shape[2] // scale)
    assert trace.nodes["y"]["fn"].event_shape == y_shape and trace.nodes["x"]["fn"].event_shape == shape
    assert trace.nodes["u"]["fn"].batch_shape == (5,) and trace.nodes["z"]["fn"].event_shape == (8,)
    assert torch.equal(guide_trace.nodes["y"]["value"], downscale(x, scale))


def test_vectorized_particles_pass_through_the_convolutions():
    """Pyro's vectorized particles give (S, N, …) latents: the explicit ELBO gets (S, N) terms."""
    from model.elbo import explicit_elbo

    srvae, guide = conv_model((1, 16, 16))
    terms = explicit_elbo(srvae, guide.guide, images((1, 16, 16), 6), num_samples=3)
    assert terms.elbo.shape == (6,) and bool(torch.isfinite(terms.elbo).all())


def test_explicit_elbo_agrees_with_pyro_for_the_conv_networks():
    srvae, guide = conv_model((2, 16, 16), seed=1)
    assert abs(z_score(srvae, guide, images((2, 16, 16), 24))) < 4


def test_the_decoder_of_x_starts_at_bicubic_y_and_depends_on_y_and_z():
    from data import upsample

    srvae, _ = conv_model((1, 16, 16))
    y = downscale(images((1, 16, 16), 4))
    z = torch.randn(4, 8)
    # its last layer is 0
    torch.testing.assert_close(srvae.p_x_given_yz.mean(y, z), upsample(y, 2, "bicubic", clamp=False))
    torch.nn.init.normal_(srvae.p_x_given_yz.net.high[-1].weight, std=0.1)  # as after some training
    base = srvae.p_x_given_yz.mean(y, z)
    assert (srvae.p_x_given_yz.mean(y.flip(0), z) - base).abs().max() > 1e-3
    assert (srvae.p_x_given_yz.mean(y, z.flip(0)) - base).abs().max() > 1e-3


def test_conv_training_lowers_the_elbo():
    srvae, guide = conv_model((1, 16, 16))
    x = images((1, 16, 16), 64, seed=2).round()  # binary-like images: something to learn
    loss = make_objective("pyro", srvae, guide)
    optimizer = torch.optim.Adam([*srvae.parameters(), *guide.parameters()], lr=3e-3)
    losses = []
    for _ in range(60):
        value = loss(x)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        losses.append(value.item() / len(x))
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 100  # nats per image


def test_halvings_and_the_default_architecture():
    assert [halvings(s, s) for s in (7, 8, 14, 16, 28, 32)] == [0, 1, 1, 2, 2, 3]
    assert default_architecture((1, 8, 8)) == "mlp" and default_architecture((1, 28, 28)) == "conv"
    assert default_architecture((3, 32, 32)) == "conv"


def test_normalized_features_stay_bounded_when_adam_grows_every_weight():
    """Each conv weight of the default width moved by 0.02 away from 0 (twenty Adam steps of 10⁻³
    that agree): the unnormalized features grow several-fold, the normalized ones keep zero mean and
    unit variance per image, so the Gaussian heads on top see inputs of the same size."""
    from model.conv import ConvFeatures

    x = images((4, 32, 32))
    for normalize in (False, True):
        torch.manual_seed(0)
        net = ConvFeatures((4, 32, 32), channels=32, normalize=normalize)
        before = net(x)
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, torch.nn.Conv2d):
                    module.weight.add_(0.02 * module.weight.sign())
        after = net(x)
        growth = (after.norm(dim=-1) / before.norm(dim=-1)).min().item()
        if normalize:
            torch.testing.assert_close(after.mean(-1), torch.zeros(16), atol=1e-5, rtol=0)
            torch.testing.assert_close(after.var(-1, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)
        else:
            assert growth > 3


def test_networks_in_their_own_units_compute_the_same_function_of_the_spread_image():
    """A decoder of x that sees y as (y − c)·g and maps its change back by 1/g is, weight for weight, c plus
    1/g times the plain decoder of (y − c)·g: bicubic upsampling is linear and its weights sum to one."""
    from model.conv import ConvXGivenYZ, NetworkUnits

    c, g = (0.05, 0.1, 0.3), (6.0, 8.0, 2.0)
    torch.manual_seed(0)
    plain = ConvXGivenYZ((3, 8, 8), 4, (3, 16, 16), 2, channels=8, heads=2)
    torch.nn.init.normal_(plain.high[-1].weight, std=0.1)  # no longer the identity at start
    spread = ConvXGivenYZ((3, 8, 8), 4, (3, 16, 16), 2, channels=8, heads=2, units=NetworkUnits((c, g)))
    spread.load_state_dict(plain.state_dict())
    assert set(spread.state_dict()) == set(plain.state_dict())  # c and g are not weights: the configuration's
    y, z = 0.05 + 0.2 * images((3, 8, 8), 5), torch.randn(5, 4)
    low, gain = torch.tensor(c)[:, None, None], torch.tensor(g)[:, None, None]
    mean, log_scale = spread(y, z).chunk(2, dim=-3)
    plain_mean, plain_log_scale = plain((y - low) * gain, z).chunk(2, dim=-3)
    assert torch.allclose(mean, low + plain_mean / gain, atol=1e-6)
    assert torch.allclose(log_scale, plain_log_scale, atol=1e-6)


def test_reflectance_data_are_spread_by_their_quantiles_and_range_data_and_older_runs_are_not(tmp_path):
    """New folder runs in fixed units put the 0.5 % and 99.5 % of each band's training pixels at 0 and 1; range
    units (already [0, 1]) and every configuration written before keep the model's own units."""
    import numpy as np

    from data import load_dataset
    from experiment.config import NETWORK_QUANTILES, network_units_for

    rng = np.random.default_rng(0)
    (tmp_path / "hr").mkdir()
    bands = np.stack([rng.integers(300, 2000, (64, 64)), rng.integers(100, 6000, (64, 64))]).astype(np.uint16)
    np.save(tmp_path / "hr" / "scene.npy", bands)
    data = load_dataset("folder", tmp_path, scale=2, crop=16)
    assert data.units == "reflectance"
    units = network_units_for(data)
    seen = data.normalize(data.train_values).transpose(0, 1).flatten(1).double().numpy()
    for band in range(2):
        spread = (seen[band] - units["low"][band]) * units["gain"][band]
        assert abs(np.quantile(spread, NETWORK_QUANTILES[0])) < 1e-6  # float32 pixels
        assert abs(np.quantile(spread, NETWORK_QUANTILES[1]) - 1) < 1e-6
    assert units["gain"][0] > 3 * units["gain"][1]  # the narrower band is spread the more
    ranged = load_dataset("folder", tmp_path, scale=2, crop=16, units="range")
    assert network_units_for(ranged) == "model"
    resolved = RunConfig(dataset="folder", crop=16).resolved(data, "cpu", tmp_path / "run")
    assert resolved.network_units == units
    assert resolved.resolved(data, "cpu", tmp_path / "run").network_units == units  # a resume keeps its own
    saved = {key: value for key, value in resolved.to_dict().items() if key != "network_units"}
    assert RunConfig.from_dict({**saved, "version": 5}).network_units == "model"
