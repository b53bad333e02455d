"""The GPU: no tensor in a training epoch is created without naming its device.

On CUDA such a tensor would be made on the CPU and copied every step. This machine has no GPU,
so the test makes the *default* device ``meta`` while CPU training runs, and records every tensor
that lands there: one created with the default device instead of the data's.
"""

import numpy as np
import pytest
import torch
from conftest import CONFIG
from datafiles import write_folder
from torch.overrides import TorchFunctionMode

from data import load_dataset
from experiment.config import RunConfig
from training.build import build_model_and_guide
from training.loop import TrainingOptions, train
from training.objectives import make_objective


class DefaultDeviceTensors(TorchFunctionMode):
    """Records (function, caller) for every tensor a torch function returns on the meta device."""

    def __init__(self):
        super().__init__()
        self.made = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(isinstance(t, torch.Tensor) and t.device.type == "meta" for t in (out if isinstance(out, tuple)
                                                                               else (out,))):
            self.made.append(getattr(func, "__name__", repr(func)))
        return out


def one_epoch_on_meta_default(config, data, objective):
    model, guide = build_model_and_guide(RunConfig(**config), data.image_shape)
    loss = make_objective(objective, model, guide)
    data = data.test_subset(16)
    recorder = DefaultDeviceTensors()
    torch.set_default_device("meta")
    try:
        with recorder:
            history = train(model, guide, data, loss, TrainingOptions(epochs=1, kl_warmup=2, monitor_test=True))
    finally:
        torch.set_default_device("cpu")
    return recorder.made, history


@pytest.mark.parametrize("objective", ["pyro", "explicit"])
@pytest.mark.parametrize("changes", [{}, {"arch": "conv", "channels": 8}, {"guide": "semi-amortized"},
                                     {"prior": "vamp"}, {"prior": "flow"}, {"guide": "local"}],
                         ids=["mlp", "conv", "semi-amortized", "vamp", "flow", "local"])
def test_a_digits_epoch_creates_no_tensor_on_the_default_device(digits, objective, changes):
    config = {**CONFIG, "refine_steps": 2, "refine_lr": 0.01, "train_images": len(digits.train_values), **changes}
    made, history = one_epoch_on_meta_default(config, digits, objective)
    assert made == [] and np.isfinite(history[0]["train_loss"])


def test_a_cropped_paired_folder_epoch_creates_no_tensor_on_the_default_device(tmp_path):
    write_folder(tmp_path, n=20, size=32, bands=2, suffix=".npy", dtype=np.uint16)
    data = load_dataset("folder", tmp_path, scale=2, crop=16)
    made, history = one_epoch_on_meta_default({**CONFIG, "arch": "conv", "channels": 8}, data, "pyro")
    assert made == [] and np.isfinite(history[0]["train_loss"])
