"""Convolutional encoders and decoders with residual blocks (``--arch conv``).

Images keep any leading batch dims (vectorized particles give (S, N, C, H, W)); the convolutions
see them flattened to (S·N, C, H, W).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from data.downscale import upsample
from model.activation import ELU


def on_images(net, images: torch.Tensor) -> torch.Tensor:
    """Apply a 4-D network to images with any leading batch dims."""
    out = net(images.reshape(-1, *images.shape[-3:]))
    return out.reshape(*images.shape[:-3], *out.shape[-3:])


def halvings(height: int, width: int) -> int:
    """How often the encoders halve (and the decoders double) a resolution: while both sides are
    even and at least 8, so 28 → 14 → 7, 32 → 16 → 8 → 4, 8 → 4, 7 stays."""
    count = 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) >= 8:
        height, width, count = height // 2, width // 2, count + 1
    return count


class ResidualBlock(nn.Module):
    """h + conv₃ₓ₃(ELU(conv₃ₓ₃(ELU(h)))), the width kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ELU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  ELU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, h):
        return h + self.body(h)


def stage(channels: int, blocks: int) -> list[nn.Module]:
    return [ResidualBlock(channels) for _ in range(blocks)]


class NetworkUnits(nn.Module):
    """The units the convolutional networks see images in: (x − c)·g per band, with ``c`` and ``g`` fixed when
    the model is built (``bands``: (c, g), one value per band), and the identity without them (SPEC §2).

    The model's own units may leave a band's values in a narrow part of [0, 1] (reflectance: most land
    pixels below 0.3). Networks initialised for inputs of unit spread and trained by Adam, whose steps
    have a fixed size in weight space, learn a detail that small less finely, so they see the band
    spread over about [0, 1] instead, and what the decoder of x adds to y upsampled is mapped back by
    1/g. The map is linear: nothing is clipped, and an image unlike the training ones passes through."""

    def __init__(self, bands: tuple | None = None):
        super().__init__()
        self.identity = bands is None
        if not self.identity:
            low, gain = (torch.tensor(values, dtype=torch.float32)[:, None, None] for values in bands)
            self.register_buffer("low", low, persistent=False)  # rebuilt from the configuration
            self.register_buffer("gain", gain, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images if self.identity else (images - self.low) * self.gain

    def back(self, out: torch.Tensor) -> torch.Tensor:
        """A network's output whose first C channels are a change of the image in these units (the rest:
        log-scales), with that change in the model's units."""
        if self.identity:
            return out
        bands = self.gain.shape[0]
        change, rest = out.split([bands, out.shape[-3] - bands], dim=-3)
        return torch.cat([change / self.gain, rest], dim=-3)


class ConvFeatures(nn.Module):
    """An image (…, C, H, W) → a flat feature vector of ``out_features``: a 3×3 convolution to
    ``channels``, residual blocks, and a stride-2 convolution per halving (``halvings``); with
    ``normalize``, scaled per image to zero mean and unit variance (layer norm, no learned affine).

    The normalization bounds what the Gaussian heads on top receive. Unnormalized, a stack of
    convolutions can scale its output by a constant factor per Adam step (every weight moves by
    about the learning rate, all in the direction that grows the activations), so an encoder that
    starts to sharpen its latent (q(z | x)'s σ falling to its floor) grows its features by orders of
    magnitude within a few steps, its latent's mean and scale with them, and training breaks down."""

    def __init__(self, image_shape, channels: int = 32, blocks: int = 1, normalize: bool = False,
                 units: NetworkUnits | None = None):
        super().__init__()
        self.normalize = normalize
        self.units = NetworkUnits() if units is None else units
        c, h, w = image_shape
        layers = [nn.Conv2d(c, channels, 3, padding=1), *stage(channels, blocks)]
        for _ in range(halvings(h, w)):
            layers += [nn.Conv2d(channels, channels, 4, stride=2, padding=1), *stage(channels, blocks)]
            h, w = h // 2, w // 2
        self.net = nn.Sequential(*layers, ELU())
        self.out_features = channels * h * w

    def forward(self, images):
        h = on_images(self.net, self.units(images)).flatten(-3)
        return F.layer_norm(h, h.shape[-1:]) if self.normalize else h


class ConvImage(nn.Module):
    """A flat vector (…, F) → image logits (…, C, H, W): a linear map to ``channels`` maps at the
    coarsest resolution, then residual blocks and a nearest ×2 upsampling plus 3×3 convolution per
    doubling, and a 3×3 convolution to the C bands."""

    def __init__(self, in_features: int, image_shape, channels: int = 32, blocks: int = 1):
        super().__init__()
        c, h, w = image_shape
        steps = halvings(h, w)
        self.start = (channels, h >> steps, w >> steps)
        self.linear = nn.Linear(in_features, math.prod(self.start))
        layers = list(stage(channels, blocks))
        for _ in range(steps):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1),
                       *stage(channels, blocks)]
        self.net = nn.Sequential(*layers, ELU(), nn.Conv2d(channels, c, 3, padding=1))

    def forward(self, h):
        return on_images(self.net, self.linear(h).unflatten(-1, self.start))


def logit(images: torch.Tensor) -> torch.Tensor:
    """logit of images in [0, 1], clamped into [10⁻³, 1 − 10⁻³]: for y upsampled, where the MLP decoder of
    x starts, so that it learns what x adds to y (DSen2's residual over an upsampled input)."""
    return torch.logit(images.clamp(1e-3, 1 - 1e-3))


def zero_last(net: nn.Sequential) -> None:
    """Zero the weights and bias of the last layer: a residual network then starts as the identity
    of what it adds to (y upsampled), and a log-scale output at 0."""
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)


def add_to_mean(out: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """``base`` added to the first C channels of a decoder's output (the mean, or its logits); a second
    set of C channels (log-scales) is left as it is."""
    if out.shape[-3] == base.shape[-3]:
        return out + base
    logits, rest = out.split([base.shape[-3], out.shape[-3] - base.shape[-3]], dim=-3)
    return torch.cat([logits + base, rest], dim=-3)


class ConvXGivenYZ(nn.Module):
    """The mean of x (and its log-scales) from (y, z), as in srVAE: z mapped to ``channels`` maps at y's resolution and
    concatenated with y; residual blocks at the LR resolution; nearest upsampling ×s; concatenated
    with y upsampled to x's size (bicubic); residual blocks; a 3×3 convolution to x's bands (and as
    many log-scale channels when ``heads`` is 2), added to the upsampled y itself, so that the mean
    of x (``link`` identity) starts at y upsampled and the networks learn what x adds to it (x and y
    share their bands). Without ``residual`` nothing is added: the output starts at 0 (log-scales)."""

    def __init__(self, y_shape, latent_z: int, x_shape, scale: int, channels: int = 32, blocks: int = 1,
                 heads: int = 1, residual: bool = True, units: NetworkUnits | None = None):
        super().__init__()
        self.units = NetworkUnits() if units is None else units
        self.lr_maps = (channels, *y_shape[1:])
        self.scale = scale
        self.from_z = nn.Linear(latent_z, math.prod(self.lr_maps))
        self.low = nn.Sequential(nn.Conv2d(channels + y_shape[0], channels, 3, padding=1), *stage(channels, blocks),
                                 nn.Upsample(scale_factor=scale, mode="nearest"))
        self.high = nn.Sequential(nn.Conv2d(channels + y_shape[0], channels, 3, padding=1), *stage(channels, blocks),
                                  ELU(), nn.Conv2d(channels, heads * x_shape[0], 3, padding=1))
        zero_last(self.high)
        self.residual = residual

    def forward(self, y, z):
        batch = torch.broadcast_shapes(y.shape[:-3], z.shape[:-1])
        y4 = y.expand(*batch, *y.shape[-3:]).reshape(-1, *y.shape[-3:])
        z_maps = self.from_z(z.expand(*batch, z.shape[-1])).reshape(-1, *self.lr_maps)
        h = self.low(torch.cat([z_maps, self.units(y4)], dim=1))
        y_big = upsample(y4, self.scale, "bicubic", clamp=False)  # a scene brighter than training is not clipped
        out = self.high(torch.cat([h, self.units(y_big)], dim=1))
        out = add_to_mean(self.units.back(out), y_big) if self.residual else out
        return out.reshape(*batch, *out.shape[-3:])


class MeanAndScale(nn.Module):
    """The mean of x and its per-pixel log-scales from two networks of (y, z) of the same shape, their
    outputs stacked as one decoder's two heads. Apart, the mean's network is the one a deterministic
    super-resolution CNN would be, and gives none of its capacity to the scales."""

    def __init__(self, mean: nn.Module, log_scale: nn.Module):
        super().__init__()
        self.mean, self.log_scale = mean, log_scale

    def forward(self, y, z):
        return torch.cat([self.mean(y, z), self.log_scale(y, z)], dim=-3)
