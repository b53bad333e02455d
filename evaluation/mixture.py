"""The predictive distribution of one pixel given y as a mixture (SPEC §7, 'Super-resolve').

S draws of the latents given y give S components p(x | y, zₛ); per pixel the predictive is their
equal-weight mixture (1/S) Σₛ Fₛ. Its moments and quantiles come from the components in closed form
or by bisection on the mixture's CDF, which needs far fewer draws than reading them off draws of x:
the empirical 5 % and 95 % quantiles of 16 draws hold the truth well under 90 % of the time.
"""

import math
from dataclasses import dataclass

import torch

from model.likelihood import generalized_normal_alpha


@dataclass(frozen=True)
class PixelMixture:
    """Components along dim 0, (S, …): location ``means``, standard deviation ``stddevs`` and, for a
    generalized normal, the shape ``power`` p broadcastable to them (p = 1 the Laplace; None: Gaussian)."""

    means: torch.Tensor
    stddevs: torch.Tensor
    power: torch.Tensor | None = None

    @property
    def _power_per_component(self) -> bool:
        """Whether ``power`` has a value per component (a generalized normal's, broadcast), not one for all."""
        return self.power is not None and self.power.dim() == self.means.dim()

    def pick(self, *index) -> "PixelMixture":
        """The components at ``index`` (as ``means[index]``): the ones importance resampling kept."""
        power = self.power[index] if self._power_per_component else self.power
        return PixelMixture(self.means[index], self.stddevs[index], power)

    @staticmethod
    def concatenate(parts: list["PixelMixture"]) -> "PixelMixture":
        """The components of several passes' draws of the same pixels as one mixture."""
        power = parts[0].power
        if parts[0]._power_per_component:
            power = torch.cat([part.power for part in parts])
        return PixelMixture(torch.cat([part.means for part in parts]), torch.cat([part.stddevs for part in parts]),
                            power)

    def component_cdf(self, value: torch.Tensor) -> torch.Tensor:
        """Fₛ(value) for every component. A generalized normal's: ½ + ½·sign(v − μ)·P(1/p, (|v − μ|/α)^p),
        P the regularized lower incomplete gamma, since (|X − μ|/α)^p is Gamma(1/p, 1)."""
        if self.power is None:
            return torch.special.ndtr((value - self.means) / self.stddevs)
        power = self.power.to(self.means.dtype)
        alpha = generalized_normal_alpha(self.stddevs, power)
        offset = value - self.means
        mass = torch.special.gammainc(1 / power, (offset.abs() / alpha).pow(power))
        return 0.5 + 0.5 * offset.sign() * mass

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        """The mixture's CDF at ``value`` (…), per pixel."""
        return self.component_cdf(value).mean(0)

    @property
    def mean(self) -> torch.Tensor:
        return self.means.mean(0)

    @property
    def second_moment(self) -> torch.Tensor:
        """E[x²] = (1/S) Σₛ (σₛ² + μₛ²)."""
        return (self.stddevs.pow(2) + self.means.pow(2)).mean(0)

    def quantile(self, level: float, steps: int = 30) -> torch.Tensor:
        """The ``level`` quantile per pixel, by bisection on the CDF between min(μ − 12σ) and max(μ + 12σ),
        which hold every component's mass but 10⁻⁷ (a Laplace's tail beyond 12σ is e^(−12√2)/2);
        each step halves the bracket."""
        width = 12 * self.stddevs
        low, high = (self.means - width).amin(0), (self.means + width).amax(0)
        for _ in range(steps):
            middle = (low + high) / 2
            below = self.cdf(middle) < level
            low, high = torch.where(below, middle, low), torch.where(below, high, middle)
        return (low + high) / 2

    def interval_holds(self, x: torch.Tensor, level: float) -> torch.Tensor:
        """Whether x lies in the central ``level`` interval, |F(x) − ½| ≤ level/2: the same event as
        q_{(1−level)/2} ≤ x ≤ q_{(1+level)/2}."""
        return (self.cdf(x) - 0.5).abs() <= level / 2


def decoder_mixture(fn, value: torch.Tensor) -> PixelMixture | None:
    """The components of p(x | y, z) from the distribution a sample site drew from (``fn``): a Gaussian, a
    Laplace (a generalized normal with p = 1 and std √2·b) or a generalized normal; None for the discretized
    Gaussian, whose mixture is read off its draws."""
    from model.distributions import GeneralizedNormal

    base = fn.base_dist if isinstance(fn, torch.distributions.Independent) else fn
    if isinstance(base, torch.distributions.Normal):
        return PixelMixture(base.loc.expand_as(value), base.scale.expand_as(value))
    if isinstance(base, torch.distributions.Laplace):
        return PixelMixture(base.loc.expand_as(value), (math.sqrt(2) * base.scale).expand_as(value),
                            torch.ones((), device=value.device))
    if isinstance(base, GeneralizedNormal):
        return PixelMixture(base.loc.expand_as(value), base.scale.expand_as(value), base.power)
    return None
