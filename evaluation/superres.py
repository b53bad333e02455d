"""Super-resolution with uncertainty (SPEC §7): u ~ q(u|y), z ~ p(z|y,u), x ~ p(x|y,z)."""

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.poutine.util import prune_subsample_sites
from torch import nn

from data.downscale import upsample
from evaluation.elbo import PIXELS_PER_PASS, chunks, per_pass
from evaluation.loglik import log_density
from evaluation.mixture import PixelMixture, decoder_mixture
from evaluation.quality import psnr, ssim, ssim_window
from evaluation.uncertainty import coverage, crps, randomized_pit, sparsification, spearman
from guides.fitting import fit_guide_parameters
from model.elbo import guide_and_model_traces
from model.scales import softplus_inverse, softplus_scale
from model.srvae import data_plate

COVERAGE_LEVELS = (0.5, 0.9, 0.95)
RELIABILITY_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def super_resolve(model, guide, y: torch.Tensor, num_samples: int = 100, proposals: int = 0,
                  fit_steps: int = 0) -> torch.Tensor:
    """S samples of x given LR images y alone: (S, N, C, H, W); the first of ``predictive_draws``."""
    return predictive_draws(model, guide, y, num_samples, proposals, fit_steps)[0]


def predictive_draws(model, guide, y: torch.Tensor, num_samples: int = 100, proposals: int = 0,
                     fit_steps: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """S draws of x given LR images y alone, and the mean of the p(x | y, z) each was drawn from: two
    tensors (S, N, C, H, W). The draws' standard deviation over dim 0 is the per-pixel uncertainty;
    the SR image is the mean of the second over dim 0, E[x | y] = E_{u,z}[E[x | y, z]] (SPEC §7),
    which has the same expectation as the draws' mean without their pixel noise (Rao–Blackwell).

    The model runs with y observed and x unobserved; the guide, given y alone, supplies the
    latents it infers from y (u for the SRVAE); the rest is drawn from the model's own
    conditionals (as Pyro's ``Predictive``). With ``fit_steps`` > 0 a Gaussian posterior per image
    is first fitted to the model given y by that many SVI steps, and replaces the guide (the VAE
    baseline's encoder never sees y). With ``proposals`` = K > 0 the draws are proposals,
    reweighted by the model (sampling-importance-resampling).
    """
    return predictive_components(model, guide, y, num_samples, proposals, fit_steps)[:2]


def predictive_components(model, guide, y: torch.Tensor, num_samples: int = 100, proposals: int = 0,
                          fit_steps: int = 0) -> tuple[torch.Tensor, torch.Tensor, PixelMixture | None]:
    """``predictive_draws``, and the S components p(x | y, zₛ) the draws came from as a ``PixelMixture``
    (None for the discretized Gaussian): the predictive's exact moments and quantiles given the S latents,
    which need far fewer draws than the draws' own."""
    if num_samples < 1:
        raise ValueError(f"the number of super-resolution samples must be positive, got {num_samples}")
    guide_fn = fit_posterior_given_y(model, y, fit_steps) if fit_steps else guide.guide
    with torch.no_grad():
        guide_trace, model_trace = guide_and_model_traces(model.model, guide_fn, None, y, proposals or num_samples)
        site = model_trace.nodes["x"]
        draws, means, mixture = site["value"], decoder_mean(site), decoder_mixture(site["fn"], site["value"])
        if not proposals:
            return draws, means, mixture
        index = importance_index(guide_trace, model_trace, num_samples)
        images = torch.arange(y.shape[0], device=y.device)
        return draws[index, images], means[index, images], None if mixture is None else mixture.pick(index, images)


def decoder_mean(site) -> torch.Tensor:
    """The mean of the distribution a sample site drew from: the Gaussian's location; for the
    discretized Gaussian, whose mean has no closed form, the draw itself (whose mean over draws
    is still an unbiased estimate of E[x | y])."""
    try:
        return site["fn"].mean
    except NotImplementedError:
        return site["value"]


class GaussianPosterior(nn.Module):
    """q = Πₛ N(locₙ,ₛ, diag scaleₙ,ₛ²) over the latent sites s of the model given y, for each image n;
    the locations start at a draw of the model's own latents, the scales at 0.1."""

    def __init__(self, model_fn, y: torch.Tensor):
        super().__init__()
        trace = prune_subsample_sites(poutine.trace(model_fn).get_trace(None, y))
        latents = [(name, site["value"].detach()) for name, site in trace.nodes.items()
                   if site["type"] == "sample" and not site["is_observed"]]
        self.names = [name for name, _ in latents]
        self.locs = nn.ParameterList([nn.Parameter(value.clone()) for _, value in latents])
        start = softplus_inverse(0.1)
        self.rhos = nn.ParameterList([nn.Parameter(torch.full_like(value, start)) for _, value in latents])

    def forward(self, x=None, y=None, num_images=None, index=None):
        with data_plate(y=y):
            for name, loc, rho in zip(self.names, self.locs, self.rhos, strict=True):
                pyro.sample(name, dist.Normal(loc, softplus_scale(rho)).to_event(1))


def fit_posterior_given_y(model, y: torch.Tensor, steps: int = 300, lr: float = 0.05) -> GaussianPosterior:
    """A diagonal Gaussian over the latents of each LR image, fitted by SVI (Trace_ELBO, Adam) to
    the model conditioned on y with x hidden; the model's own parameters stay as they are."""
    given_y = poutine.block(model.model, hide=["x"])
    with torch.no_grad():
        posterior = GaussianPosterior(given_y, y)
    elbo = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    fit_guide_parameters(list(posterior.parameters()), lambda: elbo.differentiable_loss(given_y, posterior, None, y),
                         steps, lr)
    return posterior


def proposal_log_weights(guide_trace, model_trace) -> torch.Tensor:
    """log w of K proposals per LR image, (K, N). The guide proposed the latents it infers from y, the
    model drew the rest from its own conditionals, which cancel from the weight:
    w = p(guide's latents, y) / q(guide's latents | y)."""
    proposed = {name for name, site in guide_trace.nodes.items() if site["type"] == "sample"}
    drawn_by_model = {name for name, site in model_trace.nodes.items()
                      if site["type"] == "sample" and not site["is_observed"] and name not in proposed}
    return log_density(model_trace, exclude=drawn_by_model) - log_density(guide_trace)


def importance_index(guide_trace, model_trace, num_samples: int) -> torch.Tensor:
    """Which of K proposals to keep, (S, N), drawn by importance weight (``proposal_log_weights``): the x
    drawn with the kept proposals are approximately from p(x | y) (sampling-importance-resampling)."""
    log_w = proposal_log_weights(guide_trace, model_trace)
    return torch.distributions.Categorical(logits=log_w.T).sample((num_samples,))


@torch.no_grad()
def reconstruct(model, guide, x: torch.Tensor, y=None) -> torch.Tensor:
    """The decoder's mean x̂ at latents drawn from the guide given x (x̂(y, z), z ~ q(z|x), for the SRVAE)."""
    _, model_trace = guide_and_model_traces(model.model, guide.guide, x, y)
    return model_trace.nodes["x"]["fn"].base_dist.loc[0]


def image_quality(images: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image PSNR (dB) and SSIM of ``images`` clamped to the pixel range [0, 1], against ``target``."""
    images = images.clamp(0, 1)
    return psnr(images, target), ssim(images, target)


def interval_coverage(samples: torch.Tensor, x: torch.Tensor, level: float) -> torch.Tensor:
    """Per image, the fraction of pixels of x inside the central ``level`` interval of the predictive
    distribution the samples are drawn from, read off the randomized PIT (unbiased for any S)."""
    return coverage(randomized_pit(samples, x), level)


def per_band(values: torch.Tensor) -> torch.Tensor:
    """The mean over images and pixels of each band: (N, C, H, W) → (C,)."""
    return values.transpose(0, 1).flatten(1).mean(1)


def evaluate_superres(model, guide, x: torch.Tensor, y: torch.Tensor, scale: int, num_samples: int = 100,
                      image_chunk: int = 256, proposals: int = 0, fit_steps: int = 0, span=None,
                      progress=None) -> dict:
    """PSNR and SSIM of the SR mean (``predictive_draws``), of bicubic and of nearest upsampling against the true x; the
    calibration of the samples (coverage of central intervals, from the randomized PIT) and whether
    their std is informative (Spearman correlation with the SR mean's absolute error over all test
    pixels, sparsification and AUSE); the CRPS of the samples beside the MAE of the SR mean and of
    bicubic; the mean predictive std. Means over images, and per band: PSNR (each band's range 1)
    and, with the bands' ``span`` (data units per unit of x), RMSE, MAE and CRPS in the data's units.
    ``progress(done)`` is called with the number of images done after each pass."""
    per_image = {name: [] for name in ("sr_psnr", "sr_ssim", "bicubic_psnr", "bicubic_ssim", "nearest_psnr",
                                       "nearest_ssim", "sr_std")}
    pixels = {name: [] for name in ("sr_error", "bicubic_error", "sr_crps", "sr_std_map")}
    coverages = {level: [] for level in RELIABILITY_LEVELS}
    size = per_pass(image_chunk, num_samples, x[0].numel(), budget=4 * PIXELS_PER_PASS)  # the draws are kept
    done = 0
    for xc, yc, _ in chunks(x, y, size):
        samples, means = predictive_draws(model, guide, yc, num_samples, proposals, fit_steps)
        mean, bicubic = means.mean(0), upsample(yc, scale, "bicubic")
        for name, images in (("sr", mean), ("bicubic", bicubic), ("nearest", upsample(yc, scale, "nearest"))):
            psnr, ssim = image_quality(images, xc)
            per_image[f"{name}_psnr"].append(psnr)
            per_image[f"{name}_ssim"].append(ssim)
        std = samples.std(0)
        per_image["sr_std"].append(std.flatten(1).mean(1))
        pixels["sr_error"].append((mean - xc).abs())
        pixels["bicubic_error"].append((bicubic - xc).abs())
        pixels["sr_crps"].append(crps(samples, xc))
        pixels["sr_std_map"].append(std)
        pit = randomized_pit(samples, xc)
        for level in RELIABILITY_LEVELS:
            coverages[level].append(coverage(pit, level))
        done += len(xc)
        if progress is not None:
            progress(done)
    metrics = {name: torch.cat(values).mean().item() for name, values in per_image.items()}
    pixels = {name: torch.cat(values) for name, values in pixels.items()}
    reliability = {level: torch.cat(values).mean().item() for level, values in coverages.items()}
    metrics.update({f"coverage_{round(100 * level)}": reliability[level] for level in COVERAGE_LEVELS})
    metrics.update(reliability_nominal=list(RELIABILITY_LEVELS), reliability_observed=list(reliability.values()),
                   sr_samples=num_samples, sr_proposals=proposals, sr_fit_steps=fit_steps,
                   ssim_window=ssim_window(x.shape))
    metrics.update(sr_mae=pixels["sr_error"].mean().item(), bicubic_mae=pixels["bicubic_error"].mean().item(),
                   sr_crps=pixels["sr_crps"].mean().item(),
                   std_error_spearman=spearman(pixels["sr_std_map"], pixels["sr_error"]),
                   **sparsification(pixels["sr_std_map"], pixels["sr_error"]))
    bands = {"sr_psnr": -10 * per_band(pixels["sr_error"].pow(2)).log10(),
             "bicubic_psnr": -10 * per_band(pixels["bicubic_error"].pow(2)).log10()}
    if span is not None:
        span = torch.as_tensor(span, dtype=torch.float64, device=x.device)
        for name in ("sr", "bicubic"):
            error = pixels[f"{name}_error"].double()
            bands[f"{name}_rmse_units"] = per_band(error.pow(2)).sqrt() * span
            bands[f"{name}_mae_units"] = per_band(error) * span
        bands["sr_crps_units"] = per_band(pixels["sr_crps"].double()) * span
    metrics["per_band"] = {name: values.tolist() for name, values in bands.items()}
    return metrics
