"""Builds the model and guide modules from a run's configuration (so a checkpoint rebuilds them)."""

from guides import build_guide
from model import SRVAE, build_prior


def build_model_and_guide(config: dict, x_shape, device="cpu"):
    """(SRVAE, guide module) on ``device``, for images of shape ``x_shape``."""
    levels = config["levels"] if config.get("likelihood") == "discretized" else None
    prior = build_prior(config["prior"], config["latent_u"], config["components"])
    srvae = SRVAE(x_shape, prior, config["latent_u"], config["latent_z"], config["scale"],
                  config["hidden"], config["depth"], config["gamma_init"], config["gamma_min"], levels)
    guide = build_guide(config["guide"], x_shape, latent_u=config["latent_u"], latent_z=config["latent_z"],
                        scale=config["scale"], downscale_mode=config["downscale"],
                        hidden=config["hidden"], depth=config["depth"], levels=levels)
    return srvae.to(device), guide.to(device)
