"""Super-resolution with uncertainty (SPEC §7): u ~ q(u|y), z ~ p(z|y,u), x ~ p(x|y,z)."""

import torch
from pyro.infer import Predictive
from torchmetrics.functional.image import peak_signal_noise_ratio

from data.downscale import upsample
from model.elbo import guide_and_model_traces


@torch.no_grad()
def super_resolve(srvae, guide, y: torch.Tensor, num_samples: int = 100) -> torch.Tensor:
    """S samples of x given LR images y: (S, N, C, H, W).

    The model is run with y observed and x unobserved; the guide, given y alone, supplies u;
    z and x are drawn from the model's own conditionals.
    """
    predictive = Predictive(srvae.model, guide=guide.guide, num_samples=num_samples,
                            parallel=True, return_sites=("x",))
    return predictive(None, y)["x"]


@torch.no_grad()
def reconstruct(srvae, guide, x: torch.Tensor, y=None):
    """(y, x̂): the LR image the guide used and the mean of p(x | y, z) with z ~ q(z|x)."""
    _, model_trace = guide_and_model_traces(srvae.model, guide.guide, x, y)
    return model_trace.nodes["y"]["value"][0], model_trace.nodes["x"]["fn"].mean[0]


def psnr(images: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over images of each image's PSNR (dB) against ``target``, pixel range [0, 1]."""
    per_image = peak_signal_noise_ratio(images.clamp(0, 1), target, data_range=1.0,
                                        reduction="none", dim=(1, 2, 3))
    return per_image.mean().item()


def evaluate_superres(srvae, guide, x: torch.Tensor, y: torch.Tensor, scale: int, num_samples: int = 100) -> dict:
    """PSNR of the SR mean against the true x, beside bicubic upsampling of y; mean predictive std."""
    samples = super_resolve(srvae, guide, y, num_samples)
    return {"sr_psnr": psnr(samples.mean(0), x), "bicubic_psnr": psnr(upsample(y, scale, "bicubic"), x),
            "sr_mean_std": samples.std(0).mean().item(), "sr_samples": num_samples}
