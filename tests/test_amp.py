"""Mixed precision is offered only because the explicit ELBO still agrees with Pyro's
under it, and training under it still learns."""

import pytest
import torch
from conftest import build, neg_elbo_per_image
from test_elbo import z_score

from training.loop import TrainingOptions, train
from training.objectives import make_objective

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


@pytest.mark.parametrize("device", DEVICES)
def test_the_cross_check_passes_under_bfloat16_autocast(trained, x, device):
    srvae, guide = trained
    srvae, guide, x = srvae.to(device), guide.to(device), x.to(device)
    with torch.autocast(device, dtype=torch.bfloat16):
        assert abs(z_score(srvae, guide, x)) < 4
    srvae.cpu(), guide.cpu()


def test_training_under_autocast_lowers_the_elbo_like_float32(digits):
    """Three epochs each way from the same start: both lower the −ELBO by far more than their gap."""
    results = {}
    for amp in (False, True):
        srvae, guide = build()
        start = neg_elbo_per_image(srvae, guide, digits.test_images()[:64])
        train(srvae, guide, digits, make_objective("pyro", srvae, guide), TrainingOptions(epochs=3, amp=amp))
        results[amp] = start - neg_elbo_per_image(srvae, guide, digits.test_images()[:64])
    assert results[False] > 50 and results[True] > 50
    assert abs(results[True] - results[False]) < 0.1 * results[False]
