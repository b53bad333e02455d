import pyro
import pytest
import torch

from data import load_dataset
from experiment.config import RunConfig
from model.elbo import explicit_elbo
from training.build import build_model_and_guide
from training.loop import TrainingOptions, train
from training.objectives import make_objective

CONFIG = {"guide": "amortized", "prior": "normal", "components": 10, "latent_u": 4, "latent_z": 8,
          "hidden": 64, "depth": 2, "scale": 2, "downscale": "area", "gamma_init": 0.1, "gamma_min": 1e-3,
          "feature_norm": True, "arch": "mlp", "noise": "scalar", "likelihood": "gaussian"}


@pytest.fixture(autouse=True)
def pyro_state():
    """Every test starts from a clean parameter store, with Pyro's argument checks on."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    yield


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


def build(prior="normal", seed=0, **changes):
    pyro.set_rng_seed(seed)
    return build_model_and_guide(RunConfig(**{**CONFIG, "prior": prior, **changes}), (1, 8, 8))


@pytest.fixture(scope="session")
def trained(digits):
    """A small model trained for 5 epochs with Pyro's Trace_ELBO: (srvae, guide)."""
    srvae, guide = build()
    train(srvae, guide, digits, make_objective("pyro", srvae, guide), TrainingOptions(epochs=5))
    return srvae, guide


@pytest.fixture
def x(digits):
    """A fixed batch of 64 dequantized test images."""
    return digits.test_images()[:64]


def neg_elbo_per_image(srvae, guide, x, num_samples=16, index=None) -> float:
    """The explicit −ELBO per image of x, averaged over the images, at a fixed seed (no gradients)."""
    torch.manual_seed(0)
    with torch.no_grad():
        return -explicit_elbo(srvae, guide.guide, x, num_samples=num_samples, index=index).elbo.mean().item()


def mean_and_se(values) -> tuple[float, float]:
    values = torch.as_tensor(values, dtype=torch.float64)
    return values.mean().item(), (values.std() / len(values) ** 0.5).item()
