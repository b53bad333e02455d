"""Building blocks shared by every conditional distribution: MLPs, diagonal-Gaussian heads, and the
``Architecture`` that builds every network of a model and guide (MLP or convolutional)."""

import math
from dataclasses import dataclass

import pyro.distributions as dist
import torch
from torch import nn

from data.downscale import upsample
from model.activation import ELU
from model.conv import ConvFeatures, ConvImage, ConvXGivenYZ, MeanAndScale, NetworkUnits, add_to_mean, logit
from model.scales import LATENT_SCALE_MIN, softplus_scale


def mlp(in_features: int, out_features: int, hidden: int = 256, depth: int = 2) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with ELU, then a linear output layer."""
    layers, width = [], in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), ELU()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def features(*tensors: torch.Tensor) -> torch.Tensor:
    """Concatenate flat feature vectors along the last dim, broadcasting their leading (batch) dims.

    Under vectorized particles ``u`` has shape (S, N, L) while an observed ``y`` has (N, k_y):
    both are expanded to (S, N, ·) before concatenation.
    """
    leading = {t.shape[:-1] for t in tensors}
    if len(leading) == 1:  # the common case of a training step: nothing to broadcast
        return torch.cat(tensors, dim=-1)
    batch = torch.broadcast_shapes(*leading)
    return torch.cat([t.expand(batch + t.shape[-1:]) for t in tensors], dim=-1)


class DiagonalGaussian(nn.Module):
    """N(μ(h), diag σ²(h)) with μ, σ from an MLP of the features h; σ = softplus(·) + ``min_scale``."""

    def __init__(self, in_features: int, latent_dim: int, hidden: int, depth: int,
                 min_scale: float = LATENT_SCALE_MIN):
        super().__init__()
        self.net = mlp(in_features, 2 * latent_dim, hidden, depth)
        self.min_scale = min_scale

    def loc_scale(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.net(h).chunk(2, dim=-1)
        return loc, softplus_scale(raw_scale, self.min_scale)

    def forward(self, h: torch.Tensor) -> dist.Independent:
        return dist.Normal(*self.loc_scale(h)).to_event(1)


class YZMLP(nn.Module):
    """An MLP of the flattened LR image y concatenated with z, its output shaped as an image and added
    to the logit of y upsampled (bicubic), so the mean of x starts at y upsampled."""

    def __init__(self, y_shape, latent_z: int, x_shape, scale: int, hidden: int, depth: int, heads: int = 1):
        super().__init__()
        self.scale, self.out_shape = scale, (heads * x_shape[0], *x_shape[1:])
        self.net = mlp(math.prod(y_shape) + latent_z, math.prod(self.out_shape), hidden, depth)

    def forward(self, y, z):
        out = self.net(features(y.flatten(-3), z)).unflatten(-1, self.out_shape)
        return add_to_mean(out, logit(upsample(y, self.scale)))


@dataclass(frozen=True)
class Architecture:
    """The family and sizes of every network (``--arch``, ``--hidden``, ``--depth``, ``--channels``,
    ``--blocks``): ``mlp`` works on flattened images; ``conv`` uses residual convolutions
    (``model.conv``) for images, and MLPs of width ``hidden`` and ``depth`` layers for the Gaussian
    heads on top of their features, which ``feature_norm`` normalizes per image (``--feature-norm``;
    ``model.conv.ConvFeatures``). With ``scale_network`` the conv decoder of x computes its per-pixel
    log-scales with a network of their own (``model.conv.MeanAndScale``), not a second head of the
    mean's. ``network_units`` ((c, g), one value per band) is the units the conv networks see images in
    (``model.conv.NetworkUnits``); None: the model's own."""

    kind: str = "mlp"
    hidden: int = 256
    depth: int = 2
    channels: int = 32
    blocks: int = 1
    feature_norm: bool = True
    scale_network: bool = True
    network_units: tuple | None = None

    def __post_init__(self):
        if self.kind not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.kind!r}; choose from {', '.join(ARCHITECTURES)}")

    def image_features(self, image_shape) -> tuple[nn.Module, int]:
        """A network from images (…, C, H, W) to flat features, and the number of features."""
        if self.kind == "mlp":
            return nn.Flatten(-3), math.prod(image_shape)
        net = ConvFeatures(image_shape, self.channels, self.blocks, self.feature_norm, self.units())
        return net, net.out_features

    def gaussian(self, in_features: int, latent_dim: int, min_scale: float = LATENT_SCALE_MIN) -> DiagonalGaussian:
        return DiagonalGaussian(in_features, latent_dim, self.hidden, self.depth, min_scale)

    def image_decoder(self, in_features: int, image_shape) -> nn.Module:
        """A network from flat vectors (…, F) to image logits (…, C, H, W)."""
        if self.kind == "mlp":
            return nn.Sequential(*mlp(in_features, math.prod(image_shape), self.hidden, self.depth),
                                 nn.Unflatten(-1, tuple(image_shape)))
        return ConvImage(in_features, image_shape, self.channels, self.blocks)

    def x_decoder(self, y_shape, latent_z: int, x_shape, scale: int, heads: int = 1) -> nn.Module:
        """A network from (y, z) to the logits of x (followed by as many channels of log-scales when
        ``heads`` is 2), residual over the logit of y upsampled."""
        if self.kind == "mlp":
            return YZMLP(y_shape, latent_z, x_shape, scale, self.hidden, self.depth, heads)
        sizes = (y_shape, latent_z, x_shape, scale, self.channels, self.blocks)
        if heads == 2 and self.scale_network:
            return MeanAndScale(ConvXGivenYZ(*sizes, units=self.units()),
                                ConvXGivenYZ(*sizes, residual=False, units=self.units()))
        return ConvXGivenYZ(*sizes, heads, units=self.units())

    def units(self) -> NetworkUnits:
        return NetworkUnits(self.network_units)


ARCHITECTURES = {"mlp": "fully connected networks on flattened images (tiny images)",
                 "conv": "residual convolutional networks (28×28 and larger)"}


def default_architecture(image_shape) -> str:
    """``conv`` for images of 28×28 and larger, ``mlp`` below."""
    return "conv" if min(image_shape[-2:]) >= 28 else "mlp"

MLP = Architecture()  # the default: MLPs of 2 hidden layers of 256
