"""Image quality against the truth, per image, pixel range [0, 1]: PSNR and SSIM (Wang, Bovik, Sheikh
and Simoncelli 2004, with their Gaussian window and constants)."""

import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5  # pixels
SSIM_RADIUS = 5  # an 11-pixel window, 3.5 σ either side of its centre
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # (K₁ L)², (K₂ L)² for the range L = 1


def psnr(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """10 log₁₀(1 / MSE) per image (N, C, H, W) → (N,), in dB."""
    return -10 * (images - target).pow(2).flatten(1).mean(1).log10()


def ssim_window(image_shape) -> int:
    """The side of the SSIM window: 11 pixels, less for an image of 5 pixels a side or fewer (the
    reflection at the borders needs a radius below the side)."""
    return 2 * min(SSIM_RADIUS, min(image_shape[-2:]) - 1) + 1


def ssim(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean over pixels and bands of the SSIM map, per image (N, C, H, W) → (N,):
    (2 μₐμ_b + C₁)(2 σ_ab + C₂) / ((μₐ² + μ_b² + C₁)(σₐ² + σ_b² + C₂)), with the local means, variances
    and covariance weighed by a Gaussian window of σ = 1.5 pixels, the images reflected at the borders."""
    side = ssim_window(target.shape)
    offsets = torch.arange(side, dtype=target.dtype, device=target.device) - side // 2
    weights = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    weights = weights / weights.sum()
    channels = target.shape[1]
    window = torch.outer(weights, weights).expand(channels, 1, side, side)
    moments = torch.cat([images, target, images * images, target * target, images * target])
    local = F.conv2d(F.pad(moments, (side // 2,) * 4, mode="reflect"), window, groups=channels)
    mean_a, mean_b, square_a, square_b, product = local.split(len(target))
    variance_a = (square_a - mean_a**2).clamp(min=0)
    variance_b = (square_b - mean_b**2).clamp(min=0)
    covariance = product - mean_a * mean_b
    index = ((2 * mean_a * mean_b + SSIM_C1) * (2 * covariance + SSIM_C2)
             / ((mean_a**2 + mean_b**2 + SSIM_C1) * (variance_a + variance_b + SSIM_C2)))
    return index.flatten(1).mean(1)
