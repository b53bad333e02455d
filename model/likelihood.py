"""The decoders' explicit log-likelihoods: the Gaussian in the seed's form (SPEC §4; seed eq. 12, 15, 16
corrected), its discretized form, the Laplace (the same diagonal form with |·| for (·)²), and the
generalized normal between and beyond them (|·|^p, p learned)."""

import math

import torch


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """MSE(x, x̂) = (1/k) Σₙ (xₙ − x̂ₙ)² over each image's k pixels (seed eq. 15 with its square)."""
    return (x - x_hat).pow(2).flatten(-3).mean(-1)


def gaussian_log_likelihood(x: torch.Tensor, x_hat: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """log N(x; x̂, γ²·I) per image = −(k/2)·log 2π − k·log γ − k·MSE(x, x̂)/(2γ²).

    Seed eq. 12/16 with the corrections of SPEC §4: the coefficient is k/(2γ²), k is the
    pixel count of *this* image (k_x or k_y), and the constant −(k/2)·log 2π is kept.
    ``gamma`` is a scalar; a γ per band or per pixel (shape (C, 1, 1) or the image's) gives the
    diagonal form of SPEC §2, −(k/2)·log 2π − Σᵢ log γᵢ − Σᵢ (xᵢ − x̂ᵢ)²/(2γᵢ²).
    """
    k = x.shape[-3:].numel()
    if gamma.dim() == 0:
        return -0.5 * k * math.log(2 * math.pi) - k * torch.log(gamma) - k * mse(x, x_hat) / (2 * gamma**2)
    gamma = gamma.expand(torch.broadcast_shapes(gamma.shape, x.shape, x_hat.shape))
    per_pixel = torch.log(gamma) + (x - x_hat).pow(2) / (2 * gamma**2)
    return -0.5 * k * math.log(2 * math.pi) - per_pixel.flatten(-3).sum(-1)


def laplace_log_likelihood(x: torch.Tensor, x_hat: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log Π Laplace(xᵢ; x̂ᵢ, bᵢ) per image = −k·log 2 − Σᵢ log bᵢ − Σᵢ |xᵢ − x̂ᵢ|/bᵢ, with ``scale`` b a
    scalar, per band or per pixel (the std of each pixel is √2·bᵢ). Against the Gaussian it gives
    the centre of each pixel's distribution more mass and its tails more reach, for the same
    variance: the shape of errors that are mostly small and sometimes large."""
    k = x.shape[-3:].numel()
    scale = scale.expand(torch.broadcast_shapes(scale.shape, x.shape, x_hat.shape))
    per_pixel = torch.log(scale) + (x - x_hat).abs() / scale
    return -k * math.log(2) - per_pixel.flatten(-3).sum(-1)


def generalized_normal_alpha(std: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """The scale α of a generalized normal of shape p whose standard deviation is ``std``:
    Var = α²·Γ(3/p)/Γ(1/p), so α = σ·√(Γ(1/p)/Γ(3/p)) (σ/√2 at p = 1, the Laplace's b; σ·√2 at p = 2)."""
    return std * torch.exp(0.5 * (torch.lgamma(1 / power) - torch.lgamma(3 / power)))


def generalized_normal_log_density(x: torch.Tensor, loc: torch.Tensor, std: torch.Tensor,
                                   power: torch.Tensor) -> torch.Tensor:
    """log GN(x; μ, α, p) = log p − log 2 − log α − log Γ(1/p) − (|x − μ|/α)^p per pixel, with α from the
    standard deviation σ (``generalized_normal_alpha``), so that p changes the shape at a fixed
    variance: p = 2 is N(μ, σ²), p = 1 the Laplace of std σ. |x − μ| is floored at 10⁻²⁰, where the
    term is 0 to float precision, so that its gradient in p, (·)^p·log(·), is 0 and not 0·(−∞)."""
    alpha = generalized_normal_alpha(std, power)
    residual = ((x - loc).abs().clamp(min=1e-20) / alpha).pow(power)
    return torch.log(power) - math.log(2) - torch.log(alpha) - torch.lgamma(1 / power) - residual


def generalized_normal_log_likelihood(x: torch.Tensor, x_hat: torch.Tensor, std: torch.Tensor,
                                      power: torch.Tensor) -> torch.Tensor:
    """log Π GN(xᵢ; x̂ᵢ, σᵢ, pᵢ) per image = Σᵢ log GN(xᵢ; x̂ᵢ, σᵢ, pᵢ), with σ and p scalars, per band
    or per pixel: the Gaussian's formula with (xᵢ − x̂ᵢ)²/(2σᵢ²) made (|xᵢ − x̂ᵢ|/αᵢ)^pᵢ and its
    normalizing constant to match. p > 2 gives pixels lighter tails than the Gaussian's, p < 2
    heavier ones and more mass at the centre."""
    shape = torch.broadcast_shapes(x.shape, x_hat.shape, std.shape, power.shape)
    return generalized_normal_log_density(x, x_hat, std, power).expand(shape).flatten(-3).sum(-1)


def log_bin_mass(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Φ(b) − Φ(a)) for standardized bin edges a < b, stable in both tails.

    Where a > 0 the mirrored bin (−b, −a) has the same mass and no cancellation.
    """
    mirror = a > 0
    low, high = torch.where(mirror, -b, a), torch.where(mirror, -a, b)
    log_high, log_low = torch.special.log_ndtr(high), torch.special.log_ndtr(low)
    gap = (log_low - log_high).clamp(max=-1e-6)  # where the two CDFs round to equal, see below
    exact = log_high + torch.log1p(-torch.exp(gap))
    # midpoint rule log φ(centre) + log(width) where Φ(b) − Φ(a) is lost to rounding
    centre, width = (a + b) / 2, b - a
    midpoint = -0.5 * centre**2 - 0.5 * math.log(2 * math.pi) + torch.log(width.clamp(min=1e-30))
    return torch.where(log_low - log_high > -1e-6, midpoint, exact)


def standardized_log_bin_mass(value: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor,
                              levels: int) -> torch.Tensor:
    """log of the mass of N(loc, scale²) on the bin [v/L, (v+1)/L) holding each value; the bottom
    bin reaches −∞ and the top bin +∞ (SPEC §4, 'comparable numbers').

    Standardized edges are clipped to ±1000, where ``log_ndtr`` and its gradient are still exact;
    with x̂ ∈ (0, 1) and γ ≥ 10⁻³ the clip never binds.
    """
    index = (value * levels).floor().clamp(0, levels - 1)
    a = ((index / levels - loc) / scale).clamp(-1e3, 1e3)
    b = (((index + 1) / levels - loc) / scale).clamp(-1e3, 1e3)
    inner = log_bin_mass(a, b)
    bottom, top = torch.special.log_ndtr(b), torch.special.log_ndtr(-a)  # P(t < b), P(t ≥ a)
    return torch.where(index == 0, bottom, torch.where(index == levels - 1, top, inner))


def discretized_gaussian_log_likelihood(x: torch.Tensor, x_hat: torch.Tensor, gamma: torch.Tensor,
                                        levels: int) -> torch.Tensor:
    """log P(x) per image = Σₙ log ∫_{bin(xₙ)} N(t; x̂ₙ, γ²) dt, each pixel's Gaussian mass on its bin of
    width 1/L (srVAE's discrete likelihood; SPEC §4, 'comparable numbers'). Always ≤ 0."""
    return standardized_log_bin_mass(x, x_hat, gamma, levels).flatten(-3).sum(-1)
