"""Pyro distributions for the decoders torch lacks: the discretized Gaussian (SPEC §4, 'comparable
numbers') and the generalized normal of learned shape."""

from typing import ClassVar

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from model.likelihood import generalized_normal_alpha, generalized_normal_log_density, standardized_log_bin_mass


class DiscretizedNormal(TorchDistribution):
    """The mass of N(loc, scale²) on each of ``levels`` bins of [0, 1] (the outer two open-ended).

    Values are represented by their bin centres (v + ½)/L. Per pixel; declare image event dims
    with ``.to_event(3)``.
    """

    arg_constraints: ClassVar[dict] = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.unit_interval

    def __init__(self, loc, scale, levels: int, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        self.levels = levels
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return DiscretizedNormal(self.loc.expand(batch_shape), self.scale.expand(batch_shape), self.levels)

    def log_prob(self, value):
        return standardized_log_bin_mass(value, self.loc, self.scale, self.levels)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            continuous = torch.normal(self.loc.expand(shape), self.scale.expand(shape))
            index = (continuous * self.levels).floor().clamp(0, self.levels - 1)
            return (index + 0.5) / self.levels


class GeneralizedNormal(TorchDistribution):
    """Per pixel, the generalized normal of location ``loc``, standard deviation ``scale`` and shape
    ``power`` p: density ∝ exp(−(|x − loc|/α)^p), α from the std (``generalized_normal_alpha``).
    p = 2 is the Gaussian, p = 1 the Laplace. ``scale`` is the std (not α) so that, like the other
    decoders' σ, it is floored and reported as a std whatever p is. Declare image event dims with
    ``.to_event(3)``."""

    arg_constraints: ClassVar[dict] = {"loc": constraints.real, "scale": constraints.positive,
                                       "power": constraints.positive}
    support = constraints.real

    def __init__(self, loc, scale, power, validate_args=None):
        self.loc, self.scale, self.power = broadcast_all(loc, scale, power)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return GeneralizedNormal(*(part.expand(batch_shape) for part in (self.loc, self.scale, self.power)))

    @property
    def alpha(self) -> torch.Tensor:
        return generalized_normal_alpha(self.scale, self.power)

    @property
    def mean(self):
        return self.loc

    @property
    def stddev(self):
        return self.scale

    @property
    def variance(self):
        return self.scale.pow(2)

    def log_prob(self, value):
        return generalized_normal_log_density(value, self.loc, self.scale, self.power)

    def sample(self, sample_shape=()):
        """loc + α·s·G^{1/p}, s = ±1 with equal odds and G ~ Gamma(1/p, 1): |x − loc|/α to the power p is
        then Gamma(1/p, 1), as the density says."""
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            power = self.power.expand(shape)
            magnitude = torch.distributions.Gamma(1 / power, torch.ones_like(power)).sample().pow(1 / power)
            sign = torch.randint(0, 2, shape, device=self.loc.device).to(self.loc.dtype) * 2 - 1
            return self.loc + self.alpha * sign * magnitude
