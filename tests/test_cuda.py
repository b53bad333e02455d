"""Test 9: the model on the GPU (skipped where none is present)."""

import math

import pytest
import torch
from conftest import build

from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_model_guide_and_both_elbos_run_on_cuda_and_agree(digits):
    srvae, guide = build()
    srvae, guide = srvae.cuda(), guide.cuda()
    x = digits.to("cuda").test_images()[:64]
    assert x.is_cuda
    generated = srvae.model(num_images=4)
    assert generated.is_cuda and generated.shape == (4, 1, 8, 8)
    pyro_mean, pyro_se = pyro_neg_elbo(srvae, guide, x, num_particles=100, repeats=20)
    ex_mean, ex_se = explicit_neg_elbo(srvae, guide, x, num_samples=100, repeats=20)["neg_elbo"]
    assert math.isfinite(pyro_mean) and abs(pyro_mean - ex_mean) < 4 * math.hypot(pyro_se, ex_se)
