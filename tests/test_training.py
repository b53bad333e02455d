"""Test 6: a few epochs on the digits lower the test −ELBO by a stated margin, with either objective."""

import pytest
import torch
from conftest import build

from model.elbo import explicit_elbo
from training.loop import train
from training.objectives import make_objective


def neg_elbo_per_image(srvae, guide, x):
    torch.manual_seed(0)
    with torch.no_grad():
        return -explicit_elbo(srvae, guide.guide, x, num_samples=16).elbo.mean().item()


@pytest.mark.parametrize("objective", ["pyro", "explicit"])
def test_five_epochs_lower_the_test_neg_elbo_by_150_nats(digits, objective):
    x = digits.test_images()
    srvae, guide = build(seed=1)
    before = neg_elbo_per_image(srvae, guide, x)
    history = train(srvae, guide, digits, make_objective(objective, srvae, guide), epochs=5, batch_size=64,
                    lr=1e-3, test_x=x, progress=False)
    after = neg_elbo_per_image(srvae, guide, x)
    assert before - after > 150, (before, after)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    assert history[-1]["test_loss"] < history[0]["test_loss"]


@pytest.mark.parametrize("objective", ["pyro", "explicit"])
def test_objectives_sum_the_neg_elbo_over_the_batch(trained, x, objective):
    """Every term is summed over images (none averaged): the batch (x, x) costs twice as much as x."""
    srvae, guide = trained
    loss = make_objective(objective, srvae, guide, num_particles=200)
    with torch.no_grad():
        once, twice = loss(x).item(), loss(torch.cat([x, x])).item()
    assert abs(once) > 100
    assert twice == pytest.approx(2 * once, rel=0.01)
