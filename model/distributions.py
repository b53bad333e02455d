"""A Pyro distribution for the discretized Gaussian decoder (SPEC §4, 'comparable numbers')."""

from typing import ClassVar

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from model.likelihood import standardized_log_bin_mass


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
