"""The Gaussian decoder log-likelihood in the seed's form (SPEC §4; seed eq. 12, 15, 16 corrected)."""

import math

import torch


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """MSE(x, x̂) = (1/k) Σₙ (xₙ − x̂ₙ)² over each image's k pixels (seed eq. 15 with its square)."""
    return (x - x_hat).pow(2).flatten(-3).mean(-1)


def gaussian_log_likelihood(x: torch.Tensor, x_hat: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """log N(x; x̂, γ²·I) per image = −(k/2)·log 2π − k·log γ − k·MSE(x, x̂)/(2γ²).

    Seed eq. 12/16 with the corrections of SPEC §4: the coefficient is k/(2γ²), k is the
    pixel count of *this* image (k_x or k_y), and the constant −(k/2)·log 2π is kept.
    ``gamma`` is a scalar, or one value per image.
    """
    k = x.shape[-3:].numel()
    return -0.5 * k * math.log(2 * math.pi) - k * torch.log(gamma) - k * mse(x, x_hat) / (2 * gamma**2)
