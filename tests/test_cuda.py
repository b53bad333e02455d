"""Test 9: the model on the GPU (skipped where none is present)."""

import math

import pytest
import torch
from conftest import CONFIG, build

from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo
from experiment.config import RunConfig

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


def test_conv_training_steps_on_cuda_from_device_data_and_from_the_host_loader(tmp_path):
    """Both batch sources on the GPU: data moved once, and data kept on the host (pinned, workers)."""
    import numpy as np
    from datafiles import write_folder

    from data import load_dataset
    from training.build import build_model_and_guide
    from training.loop import TrainingOptions, train
    from training.objectives import make_objective

    write_folder(tmp_path, n=20, size=28, bands=3, suffix=".npy", dtype=np.float32)
    host = load_dataset("folder", tmp_path)
    for data in (host.to("cuda"), host.to("cuda", train=False)):
        config = {**CONFIG, "arch": "conv", "channels": 8, "hidden": 32}
        srvae, guide = build_model_and_guide(RunConfig(**config), data.image_shape, "cuda")
        x, y = data.test_pair()
        options = TrainingOptions(epochs=3, batch_size=4, device="cuda", monitor_test=True)
        history = train(srvae, guide, data, make_objective("pyro", srvae, guide), options)
        assert x.is_cuda and y.is_cuda and all(math.isfinite(row["train_loss"]) for row in history)
        assert history[-1]["test_loss"] < history[0]["test_loss"]


def test_the_cnn_baseline_trains_on_cuda_from_host_data(tmp_path):
    """The CNN's batches come from the host data to the network's device, and the error falls there."""
    import numpy as np

    from baselines.cnn import ResidualCNN, train_cnn
    from data import load_dataset

    (tmp_path / "hr").mkdir()
    np.save(tmp_path / "hr" / "a.npy", np.kron(np.random.default_rng(0).random((2, 32, 24)),
                                                np.ones((1, 2, 2))).astype(np.float32))
    data = load_dataset("folder", tmp_path, scale=2, crop=8)
    torch.manual_seed(0)
    net = ResidualCNN(2, 2, channels=8).to("cuda")
    losses = train_cnn(net, data, steps=60, batch_size=16, lr=3e-3)
    assert next(net.parameters()).is_cuda and np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
