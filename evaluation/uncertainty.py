"""Whether the super-resolution's uncertainty is calibrated and informative (SPEC §7, 'Super-resolve'):
probability integral transforms, interval coverage, the rank correlation of std and error, the
sparsification curve and its area (AUSE), and the CRPS of the samples."""

import torch


def randomized_pit(samples: torch.Tensor, x: torch.Tensor, generator=None) -> torch.Tensor:
    """The randomized probability integral transform of each pixel of x under its S samples:
    (#{samples < x} + U·(#{samples = x} + 1)) / (S + 1), U ~ U[0, 1).

    When x and the samples are exchangeable draws (a calibrated model), x's rank among the S + 1
    values is uniform on {0, …, S} and this value is exactly uniform on [0, 1). The central α
    interval of the predictive distribution holds x when |PIT − ½| ≤ α/2, so coverage read off the
    PIT has no bias from the finite sample, unlike the interval between the samples' empirical
    quantiles (whose coverage is (S·α − 1)/(S + 1) on average)."""
    below = (samples < x).sum(0)
    ties = (samples == x).sum(0)
    noise = torch.rand(x.shape, generator=generator, device="cpu" if generator is not None else x.device)
    return (below + noise.to(x.device) * (ties + 1)) / (samples.shape[0] + 1)


def coverage(pit: torch.Tensor, level: float) -> torch.Tensor:
    """Per image (first dim), the fraction of pixels whose value lies in the central ``level`` interval."""
    return ((pit - 0.5).abs() <= level / 2).flatten(1).float().mean(1)


def crps(samples: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The continuous ranked probability score of the empirical distribution of the S samples at x,
    per pixel: E|X − x| − ½·E|X − X′| (X, X′ independent draws; lower is better, in x's units). A
    point forecast's CRPS is its absolute error. E|X − X′| over the sorted samples s₍ᵢ₎ is
    (2/S²)·Σᵢ (2i − S − 1)·s₍ᵢ₎, O(S log S) instead of O(S²)."""
    s = samples.shape[0]
    spread_weights = (2 * torch.arange(1, s + 1, device=samples.device, dtype=samples.dtype) - s - 1)
    spread = (samples.sort(0).values * spread_weights.view(-1, *[1] * x.dim())).sum(0) * 2 / s**2
    return (samples - x).abs().mean(0) - spread / 2


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two equally long sets of values (ties broken by position)."""
    ranks = [torch.empty_like(v, dtype=torch.float64).scatter_(0, v.argsort(), torch.arange(len(v),
             dtype=torch.float64, device=v.device)) for v in (a.flatten(), b.flatten())]
    ra, rb = (r - r.mean() for r in ranks)
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


SPARSIFICATION_FRACTIONS = tuple(i / 100 for i in range(100))


def sparsification(std: torch.Tensor, error: torch.Tensor, fractions=SPARSIFICATION_FRACTIONS) -> dict:
    """The sparsification curve: the mean absolute error of the pixels left after removing the
    fraction f of them with the largest std, against the oracle that removes the largest errors,
    both divided by the mean error of all pixels; and the area between them (AUSE, the trapezoid
    rule over f; 0 for a std ranked exactly as the error) beside the area of removing pixels at
    random (the oracle curve's area below 1, which any informative std beats)."""
    error = error.flatten().double()
    by_std = error[std.flatten().argsort(descending=True)]
    by_error = error.sort(descending=True).values
    total, n = error.mean(), len(error)

    def curve(ordered):
        tail_sums = ordered.flip(0).cumsum(0).flip(0)  # sum of ordered[k:] for every k
        kept = torch.tensor([round(f * n) for f in fractions], device=error.device)
        return (tail_sums[kept] / (n - kept)) / total

    model_curve, oracle_curve = curve(by_std), curve(by_error)
    f = torch.tensor(fractions, dtype=torch.float64)
    ause = torch.trapezoid((model_curve - oracle_curve).cpu(), f)
    random = torch.trapezoid((1 - oracle_curve).cpu(), f)
    return {"sparsification_fractions": list(fractions), "sparsification_model": model_curve.tolist(),
            "sparsification_oracle": oracle_curve.tolist(), "ause": float(ause), "ause_random": float(random)}
