"""Uniform dequantization of discrete pixel levels (SPEC §4, 'what the ELBO bounds')."""

import torch


def dequantize(values: torch.Tensor, levels: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """x = (v + ε) / L with ε ~ U[0, 1): maps the levels v ∈ {0, …, L−1} into [0, 1], bin width 1/L."""
    noise = torch.rand(values.shape, generator=generator, device=values.device, dtype=values.dtype)
    return (values + noise) / levels
