"""Builds the model and guide modules from a run's configuration (so a checkpoint rebuilds them)."""

from guides import build_guide
from model import SRVAE, build_prior
from model.vae import VAE

MODELS = {"srvae": "the super-resolution VAE, p(x|y,z) p(z|y,u) p(y|u) p(u)",
          "vae": "the plain VAE baseline p(x|z) p(z), latent size L_u + L_z"}


def build_model_and_guide(config: dict, x_shape, device="cpu"):
    """(model module, guide module) on ``device``, for images of shape ``x_shape``."""
    levels = config["levels"] if config.get("likelihood") == "discretized" else None
    if config.get("model", "srvae") == "vae":
        latent = config["latent_u"] + config["latent_z"]  # the same latent budget as the SRVAE
        vae = VAE(x_shape, build_prior(config["prior"], latent, config["components"]), latent, config["scale"],
                  config["downscale"], config["hidden"], config["depth"], config["gamma_init"], config["gamma_min"],
                  levels)
        guide = build_guide(config["guide"], x_shape, model="vae", latent=latent, scale=config["scale"],
                            downscale_mode=config["downscale"], hidden=config["hidden"], depth=config["depth"],
                            levels=levels)
        return vae.to(device), guide.to(device)
    prior = build_prior(config["prior"], config["latent_u"], config["components"])
    srvae = SRVAE(x_shape, prior, config["latent_u"], config["latent_z"], config["scale"],
                  config["hidden"], config["depth"], config["gamma_init"], config["gamma_min"], levels)
    guide = build_guide(config["guide"], x_shape, latent_u=config["latent_u"], latent_z=config["latent_z"],
                        scale=config["scale"], downscale_mode=config["downscale"],
                        hidden=config["hidden"], depth=config["depth"], levels=levels)
    return srvae.to(device), guide.to(device)
