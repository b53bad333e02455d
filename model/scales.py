"""Positive scales from unconstrained parameters, as every diagonal Gaussian of the latents takes
them (SPEC §3, §6): σ = softplus(ρ) + a floor."""

import math

import torch
from torch.nn import functional as F

LATENT_SCALE_MIN = 1e-4  # the floor of the latents' σ: log q stays finite when a unit sharpens


def softplus_scale(rho: torch.Tensor, floor: float = LATENT_SCALE_MIN) -> torch.Tensor:
    """σ = softplus(ρ) + ``floor``: smooth and positive for any ρ."""
    return F.softplus(rho) + floor


def softplus_inverse(value: float) -> float:
    """ρ with softplus(ρ) = ``value``: log(e^value − 1), the ρ at which a scale starts at ``value``."""
    return math.log(math.expm1(value))
