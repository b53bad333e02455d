"""Building blocks shared by every conditional distribution: MLPs and diagonal-Gaussian heads."""

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F


def mlp(in_features: int, out_features: int, hidden: int = 256, depth: int = 2) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with ELU, then a linear output layer."""
    layers, width = [], in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ELU()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def features(*tensors: torch.Tensor) -> torch.Tensor:
    """Concatenate flat feature vectors along the last dim, broadcasting their leading (batch) dims.

    Under vectorized particles ``u`` has shape (S, N, L) while an observed ``y`` has (N, k_y):
    both are expanded to (S, N, ·) before concatenation.
    """
    batch = torch.broadcast_shapes(*(t.shape[:-1] for t in tensors))
    return torch.cat([t.expand(batch + t.shape[-1:]) for t in tensors], dim=-1)


class DiagonalGaussian(nn.Module):
    """N(μ(h), diag σ²(h)) with μ, σ from an MLP of the features h; σ = softplus(·) + ``min_scale``."""

    def __init__(self, in_features: int, latent_dim: int, hidden: int, depth: int, min_scale: float = 1e-4):
        super().__init__()
        self.net = mlp(in_features, 2 * latent_dim, hidden, depth)
        self.min_scale = min_scale

    def forward(self, h: torch.Tensor) -> dist.Independent:
        loc, raw_scale = self.net(h).chunk(2, dim=-1)
        return dist.Normal(loc, F.softplus(raw_scale) + self.min_scale).to_event(1)
