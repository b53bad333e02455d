"""Builds the model and guide modules from a run's configuration (so a checkpoint rebuilds them)."""

from guides import build_guide
from model import SRVAE, build_prior
from model.conditionals import FAMILIES
from model.networks import Architecture
from model.srvae import lr_shape
from model.vae import VAE

MODELS = {"srvae": "the super-resolution VAE, p(x|y,z) p(z|y,u) p(y|u) p(u)",
          "vae": "the plain VAE baseline p(x|z) p(z), latent size L_u + L_z"}


def build_model_and_guide(config, x_shape, device="cpu"):
    """(model module, guide module) on ``device``, for images of shape ``x_shape``, as the run
    configuration ``config`` (``experiment.config.RunConfig``) describes them."""
    levels = config.levels if config.likelihood == "discretized" else None
    arch = architecture(config, x_shape)
    shared = {"scale": config.scale, "downscale_mode": config.downscale, "arch": arch, "levels": levels}
    decoders = {"arch": arch, "gamma_init": config.gamma_init, "gamma_min": config.gamma_min, "levels": levels}
    if config.model == "vae":
        latent = config.latent_u + config.latent_z  # the same latent budget as the SRVAE
        guide = build_guide(config.guide, x_shape, model="vae", latent=latent, **shared)
        prior = build_prior(config.prior, latent, config.components, encoder=guide.prior_encoder, pseudo_shape=x_shape)
        model = VAE(x_shape, prior, latent, config.scale, config.downscale, **decoders)
    else:
        per_datapoint = {"num_images": config.train_images} if config.guide == "local" else {}
        if config.guide == "semi-amortized":
            per_datapoint = {"refine_steps": config.refine_steps, "refine_lr": config.refine_lr}
        guide = build_guide(config.guide, x_shape, latent_u=config.latent_u, latent_z=config.latent_z, **shared,
                            **per_datapoint)
        prior = build_prior(config.prior, config.latent_u, config.components, encoder=guide.prior_encoder,
                            pseudo_shape=lr_shape(x_shape, config.scale))
        noise = config.noise_for(arch.kind)
        likelihood = config.likelihood_for(noise)
        family = likelihood if likelihood in FAMILIES else "gaussian"  # discretized: a Gaussian
        model = SRVAE(x_shape, prior, config.latent_u, config.latent_z, config.scale, noise=noise, family=family,
                      **decoders)
        guide.bind(model)
    return model.to(device), guide.to(device)


def architecture(config, x_shape) -> Architecture:
    """The networks the configuration describes for images of ``x_shape``."""
    bands = config.network_units
    units = (tuple(bands["low"]), tuple(bands["gain"])) if isinstance(bands, dict) else None
    return Architecture(config.architecture_for(x_shape), config.hidden, config.depth, config.channels, config.blocks,
                        config.feature_norm, config.scale_network, units)
