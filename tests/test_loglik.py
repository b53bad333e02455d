"""The importance-weighted estimate of log p(x, y) is a true bound that converges."""

import copy
import math

import pytest
import torch
from conftest import mean_and_se

from data import downscale
from evaluation.loglik import active_units, importance_weighted_log_likelihood, log_weights
from guides import build_guide
from model import SRVAE, build_prior, explicit_elbo
from model.networks import Architecture
from training.objectives import make_objective


def tiny_model(training_steps):
    """1-D u, 1-D z, 2×2 images (y is 1×1): log p(x, y) is a 2-D integral a grid can do."""
    torch.manual_seed(0)
    tiny = Architecture(hidden=16, depth=1)
    srvae = SRVAE((1, 2, 2), build_prior("normal", 1), latent_u=1, latent_z=1, arch=tiny, gamma_init=0.3)
    guide = build_guide("amortized", (1, 2, 2), latent_u=1, latent_z=1, arch=tiny)
    loss = make_objective("explicit", srvae, guide, num_particles=16)
    optimizer = torch.optim.Adam([*srvae.parameters(), *guide.parameters()], lr=1e-2)
    data = torch.rand(256, 1, 2, 2)
    for _ in range(training_steps):
        optimizer.zero_grad()
        loss(data).backward()
        optimizer.step()
    return srvae, guide, torch.rand(6, 1, 2, 2)


@pytest.fixture(scope="module")
def tiny():
    """Trained briefly, so that the guide is a fair proposal and K = 10⁵ converges."""
    return tiny_model(600)


@pytest.fixture(scope="module")
def tiny_untrained():
    """At initialisation the guide is a poor proposal: the gains from more samples are large."""
    return tiny_model(0)


@torch.no_grad()
def brute_force_log_p(srvae, x, points=1201, limit=8.0):
    """log ∫∫ p(x | y, z) p(z | y, u) p(y | u) p(u) du dz on a (points × points) grid, y = d(x)."""
    y = downscale(x)
    grid = torch.linspace(-limit, limit, points)
    step = (grid[1] - grid[0]).item()
    u_grid, z_grid = torch.meshgrid(grid, grid, indexing="ij")
    u, z = u_grid.reshape(-1, 1, 1), z_grid.reshape(-1, 1, 1)  # broadcast against the N images
    log_joint = (srvae.p_u().log_prob(u) + srvae.p_y_given_u(u).log_prob(y)
                 + srvae.p_z_given_yu(y, u).log_prob(z) + srvae.p_x_given_yz(y, z).log_prob(x))
    return torch.logsumexp(log_joint, dim=0) + 2 * math.log(step)


def test_converges_to_the_brute_force_log_likelihood(tiny):
    srvae, guide, x = tiny
    exact = brute_force_log_p(srvae, x)
    torch.testing.assert_close(brute_force_log_p(srvae, x, points=801, limit=10.0), exact, atol=1e-3, rtol=0)
    torch.manual_seed(1)
    estimate = importance_weighted_log_likelihood(srvae, guide, x, num_samples=100_000, sample_chunk=20_000)
    assert (estimate - exact).abs().max().item() < 0.01


def test_elbo_le_iw_estimate_increasing_in_k_le_log_p(tiny_untrained):
    """In expectation: ELBO = IW₁ < IW₄ < IW₁₆ < IW₆₄ ≤ log p(x, y). Means over 200 repeats, 3 SE margins."""
    srvae, guide, x = tiny_untrained
    torch.manual_seed(2)
    exact = brute_force_log_p(srvae, x).mean().item()
    means = {}
    for k in (1, 4, 16, 64):
        repeats = [importance_weighted_log_likelihood(srvae, guide, x, num_samples=k).mean() for _ in range(200)]
        means[k] = mean_and_se(repeats)
    with torch.no_grad():
        elbo = mean_and_se([explicit_elbo(srvae, guide.guide, x, num_samples=50).elbo.mean() for _ in range(200)])
    assert abs(means[1][0] - elbo[0]) < 3 * math.hypot(means[1][1], elbo[1])
    for small, large in ((1, 4), (4, 16), (16, 64)):
        assert means[large][0] - means[small][0] > 3 * math.hypot(means[large][1], means[small][1])
    assert means[64][0] <= exact + 3 * means[64][1]
    assert elbo[0] < exact


def test_iw_estimate_is_above_the_elbo_on_the_digits(trained, x):
    srvae, guide = trained
    torch.manual_seed(3)
    iw = importance_weighted_log_likelihood(srvae, guide, x, num_samples=1000, sample_chunk=128, image_chunk=16)
    with torch.no_grad():
        elbo = explicit_elbo(srvae, guide.guide, x, num_samples=1000).elbo
    assert iw.shape == (64,)
    assert (iw - elbo).mean().item() > 0.1  # a visible gain, far above the MC noise of either (< 0.01)


def test_chunking_does_not_change_the_estimate(trained, x):
    """One chunk, or uneven chunks of draws and images: the same estimate within 4 standard errors."""
    srvae, guide = trained
    torch.manual_seed(4)
    whole = importance_weighted_log_likelihood(srvae, guide, x, num_samples=500, sample_chunk=500, image_chunk=64)
    pieces = importance_weighted_log_likelihood(srvae, guide, x, num_samples=500, sample_chunk=37, image_chunk=10)
    difference = whole - pieces
    assert abs(difference.mean().item()) < 4 * difference.std().item() / len(difference) ** 0.5


def test_active_units(trained, x):
    _, guide = trained
    counts = active_units(guide, x)
    assert 1 <= counts["active_z"] <= 8 and 0 <= counts["active_u"] <= 4
    blind = copy.deepcopy(guide)  # the fixture is shared: change a copy
    with torch.no_grad():
        blind.q_u_given_y.gaussian.net[-1].weight.zero_()  # q(u|y) no longer depends on y
    assert active_units(blind, x)["active_u"] == 0


def test_rejects_a_non_positive_k(trained, x):
    srvae, guide = trained
    with pytest.raises(ValueError, match="must be positive"):
        importance_weighted_log_likelihood(srvae, guide, x, num_samples=0)


def test_the_encoder_of_y_runs_once_per_image_not_once_per_draw(trained, x):
    """Under a plate of K draws the guide's y site holds d(x) K times; q(u | y) is computed
    from the N images, and the log-weights are those of the encoder run on every copy."""
    srvae, guide = trained
    seen = []
    hook = guide.q_u_given_y.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    try:
        torch.manual_seed(5)
        lw = log_weights(srvae, guide, x, num_samples=7)
    finally:
        hook.remove()
    assert seen == [torch.Size([64, 1, 4, 4])] and lw.shape == (7, 64)
    per_copy = copy.deepcopy(guide)  # the encoder run on the K copies of y, as before the change
    per_copy.d = lambda images: downscale(images).expand(7, -1, -1, -1, -1)
    torch.manual_seed(5)
    assert torch.allclose(log_weights(srvae, per_copy, x, num_samples=7), lw, rtol=1e-5, atol=1e-3)
