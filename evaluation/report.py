"""Everything measured on the test set after training, the figures, and the printed summary."""

import resource
import time

import numpy as np
import pyro
import torch

from data.downscale import upsample
from evaluation import figures
from evaluation.elbo import bits_per_dim, evaluate_elbo, mean_and_se
from evaluation.loglik import active_units, importance_weighted_log_likelihood
from evaluation.progress import Stages, clock
from evaluation.superres import evaluate_superres, predictive_draws, reconstruct


def guide_for(model, guide, x, config, y=None, stages=None):
    """The guide that evaluates the images x (paired with y, if given): the trained one, or, for a
    local guide, a copy with parameters for x fitted by ``config.local_steps`` SVI steps, the
    model frozen (SPEC §5)."""
    if guide.amortized:
        return guide
    progress = None if stages is None else stages(f"fitting the local guide to {len(x)} images",
                                                  config.local_steps, "steps")
    return guide.fitted_to(model, x, config.local_steps, y=y, progress=progress)


def evaluate_run(model, guide, data, config, log_likelihood=importance_weighted_log_likelihood) -> dict:
    """Test-set metrics of a trained model; deterministic for a given ``config.seed``.
    ``log_likelihood`` gives the importance-weighted log p(x, y) per image (under torchrun, shared
    out among the processes: ``training.distributed.sharded``). Each stage shows its progress."""
    pyro.set_rng_seed(config.seed)
    x, y_paired = data.test_pair()
    stages = Stages()
    guide = guide_for(model, guide, x, config, y_paired, stages)
    levels = data.bin_levels
    metrics = evaluate_elbo(model, guide, x, y_paired, levels=levels, num_particles=config.eval_particles,
                            repeats=config.eval_repeats, mixture_kl=config.mixture_kl,
                            target_se=config.elbo_se, max_particles=config.eval_max_particles,
                            stages=stages)
    progress = stages(f"importance-weighted log-likelihood, K = {config.iw_samples}", len(x))
    metrics.update(evaluate_loglik(model, guide, x, y_paired, levels, config.iw_samples, log_likelihood,
                                   progress))
    metrics.update(active_units(guide, x, y_paired))
    y = y_paired if y_paired is not None else guide.d(x)
    progress = stages(f"super-resolution, {config.sr_samples} samples per image", len(x))
    metrics.update(evaluate_superres(model, guide, x, y, config.scale, config.sr_samples,
                                     proposals=config.sr_proposals, fit_steps=config.sr_fit_steps,
                                     span=data.span, progress=progress))
    stages.done()
    metrics.update(**model.gammas(), models_y=model.models_y, k_x=model.k_x, k_y=model.k_y, test_images=len(x),
                   levels=levels, paired=y_paired is not None, evaluation_seconds=time.perf_counter() - stages.start)
    if "power_x" in metrics:  # generalized-normal pixels: the shape each band learned
        metrics.setdefault("per_band", {})["power_x"] = model.p_x_given_yz.power.flatten().tolist()
    return metrics


def evaluate_loglik(model, guide, x, y, levels: float, num_samples: int,
                    log_likelihood=importance_weighted_log_likelihood, progress=None) -> dict:
    """The importance-weighted −log p(x, y) per image (−log p(x) for the VAE): mean and standard
    error over images, its bits/dim, and the time and peak memory of computing it."""
    start = time.perf_counter()
    if x.is_cuda:
        torch.cuda.reset_peak_memory_stats(x.device)
    log_p = log_likelihood(model, guide, x, y, num_samples=num_samples, progress=progress)
    mean, se = mean_and_se(-log_p.double())
    peak = (torch.cuda.max_memory_allocated(x.device) if x.is_cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    bits = bits_per_dim(mean, model.k_x, model.k_y, levels, discrete=model.levels is not None)
    return {"iw_neg_log_likelihood": mean, "iw_neg_log_likelihood_se": se, "iw_samples": num_samples,
            "iw_bits_per_dim_kx": bits["bits_per_dim_kx"], "iw_bits_per_dim_kx_ky": bits["bits_per_dim_kx_ky"],
            "iw_seconds": time.perf_counter() - start,
            "iw_peak_memory_mb": peak / 2**20, "iw_peak_memory_of": "cuda allocations" if x.is_cuda
            else "process resident set (whole run so far)"}


@torch.no_grad()
def write_figures(model, guide, data, config, history: list[dict], metrics: dict, out) -> list[str]:
    """The figures of SPEC §7 in ``out``, with their progress; returns their names."""
    pyro.set_rng_seed(config.seed)
    stages = Stages()
    x, y_paired = data.test_subset(10).test_pair()
    guide = guide_for(model, guide, x, config, y_paired, stages)
    y = y_paired if y_paired is not None else guide.d(x)
    written, progress = [], stages("figures", 6 + bool(history), "files")

    def wrote(name):
        written.append(name)
        progress(len(written))

    if history:
        figures.loss_curves(history, out / "loss_curves.png")
        wrote("loss_curves.png")

    figures.image_rows([("x", x), ("y" if y_paired is not None else "y = d(x)", y),
                        ("x̂", reconstruct(model, guide, x, y_paired))], out / "reconstructions.png",
                       "reconstructions: x, its LR version y, the decoder's mean at latents drawn from q(· | x)")
    wrote("reconstructions.png")

    generated = pyro.poutine.trace(model.model).get_trace(num_images=10).nodes
    x_generated = generated["x"]["value"]
    if not model.models_y:
        rows, title = [("x ~ p(x|z)", x_generated), ("d(x)", guide.d(x_generated))], "generated: z ~ p(z) → x"
    else:
        rows, title = [("y ~ p(y|u)", generated["y"]["value"]), ("x ~ p(x|y,z)", x_generated)], \
            "generated: u ~ p(u) → y → z → x"
    figures.image_rows(rows, out / "samples.png", title)
    wrote("samples.png")

    samples, means = predictive_draws(model, guide, y, config.sr_samples, config.sr_proposals,
                                      config.sr_fit_steps)
    sr_mean = means.mean(0)
    rgb = config.rgb_bands
    stretch = figures.percentile_stretch(x, rgb, data.low, data.span) if data.name == "folder" else None
    figures.image_rows([("y", y), ("bicubic", upsample(y, config.scale, "bicubic")),
                        ("SR mean", sr_mean), ("SR sample", samples[0]), ("SR sample", samples[1]),
                        ("SR std", samples.std(0)), ("true x", x), ("|SR mean − x|", (sr_mean - x).abs())],
                       out / "superres.png", f"super-resolution from y alone: {config.sr_samples} samples of x",
                       heat=("SR std", "|SR mean − x|"), rgb=rgb,
                       stretch=stretch)
    wrote("superres.png")
    figures.reliability(metrics["reliability_nominal"], metrics["reliability_observed"], out / "reliability.png")
    wrote("reliability.png")
    figures.sparsification(metrics, out / "sparsification.png")
    wrote("sparsification.png")
    np.savez_compressed(out / "superres.npz", **{name: data.to_original_units(images).cpu().numpy() for name, images in
                        (("lr", y), ("hr", x), ("sr_mean", sr_mean))},
                        sr_std=(samples.std(0) * data.span[:, None, None].to(x.device)).cpu().numpy())
    wrote("superres.npz")
    stages.close()
    return written


def precision(m: dict, repeats: str, se: str) -> str:
    """How an ELBO estimate was made: its particles per image, and whether the cap stopped it short of
    the standard error asked for."""
    count = m.get(repeats, m["repeats"])
    text = f"{count * m['particles']} particles per image, {count} × {m['particles']}"
    if m.get("target_se") is not None and m[se] > m["target_se"]:
        text += f"; capped: ± {m['target_se']:g} was asked"
    return text


def summary(metrics: dict, config, seconds: float) -> str:
    """A short table of the run's results, in words a reader can check against the SPEC."""
    m, vae = metrics, not metrics["models_y"]
    kl_name = "KL(q(z|x) ‖ p(z))" if vae else "KL_u"
    bounded = f" (≤ 0 expected: the explicit {kl_name} is an upper bound)" if "bound" in m["prior_kl_method"] else ""
    target = "−log p(x)" if vae else "−log p(x, y)"
    if config.likelihood == "discretized":
        target = target.replace("p(", "P(")  # probability masses
    rows = [
        ("test −ELBO, Pyro Trace_ELBO", f"{m['pyro_neg_elbo']:.2f} ± {m['pyro_neg_elbo_se']:.2f} nats/image "
                                        f"({precision(m, 'repeats', 'pyro_neg_elbo_se')})"),
        ("test −ELBO, explicit", f"{m['explicit_neg_elbo']:.2f} ± {m['explicit_neg_elbo_se']:.2f} nats/image "
                                 f"({precision(m, 'explicit_repeats', 'explicit_neg_elbo_se')}; "
                                 f"{kl_name}: {m['prior_kl_method']})"),
        ("  difference", f"{m['difference']:+.3f} nats = {m['difference_in_se']:+.2f} standard errors{bounded}"),
    ]
    if vae:
        rows += [("  E log p(x|z)", f"{m['rec_x']:.2f}"), (f"  {kl_name}", f"{m['kl_z']:.2f}")]
    else:
        rows += [("  E log p(x|y,z)", f"{m['rec_x']:.2f}"), ("  E log p(y|u)", f"{m['rec_y']:.2f}"),
                 ("  KL_u", f"{m['kl_u']:.2f}"), ("  KL_z", f"{m['kl_z']:.2f}")]
    rows += [
        (f"{target}, importance-weighted, K = {m['iw_samples']}",
         f"{m['iw_neg_log_likelihood']:.2f} ± {m['iw_neg_log_likelihood_se']:.2f} nats/image "
         f"(± over images; {m['iw_seconds']:.1f} s)"),
        (f"bits/dim over k_x = {m['k_x']}: ELBO, IW", f"{m['bits_per_dim_kx']:.3f}, {m['iw_bits_per_dim_kx']:.3f}"),
    ]
    if vae:
        rows += [("active units of z", f"{m['active_z']}/{config.latent_u + config.latent_z}"),
                 ("γ (x)", f"{m['gamma_x']:.4f}")]
    else:
        rows += [(f"bits/dim over k_x + k_y = {m['k_x'] + m['k_y']}: ELBO, IW",
                  f"{m['bits_per_dim_kx_ky']:.3f}, {m['iw_bits_per_dim_kx_ky']:.3f}"),
                 ("active units of u, z",
                  f"{m['active_u']}/{config.latent_u}, {m['active_z']}/{config.latent_z}"),
                 ("γ₁ (x), γ₂ (y)", f"{m['gamma_x']:.4f}, {m['gamma_y']:.4f}")]
        if "power_x" in m:
            bands = m.get("per_band", {}).get("power_x", [])
            each = f" (x per band {' '.join(f'{p:.3f}' for p in bands)})" if len(bands) > 1 else ""
            rows.append(("shape p (x), (y): 1 Laplace, 2 Gaussian", f"{m['power_x']:.3f}, {m['power_y']:.3f}{each}"))
    source = (f"a Gaussian fitted to p(· | y) by {m['sr_fit_steps']} SVI steps" if m["sr_fit_steps"]
              else "the guide's q(u | y)")
    source += f", resampled from {m['sr_proposals']} weighted proposals" if m["sr_proposals"] else ""
    rows += [
        (f"SR mean of {m['sr_samples']} samples", f"PSNR {m['sr_psnr']:.2f} dB, SSIM {m['sr_ssim']:.3f}"),
        ("  latents drawn from", source),
        ("  bicubic upsampling", f"PSNR {m['bicubic_psnr']:.2f} dB, SSIM {m['bicubic_ssim']:.3f}"),
        ("  nearest upsampling", f"PSNR {m['nearest_psnr']:.2f} dB, SSIM {m['nearest_ssim']:.3f}"),
        ("  coverage of central 50/90/95 %", " / ".join(f"{m[f'coverage_{p}']:.3f}" for p in (50, 90, 95))),
        ("  std vs |error|: Spearman, AUSE", f"{m['std_error_spearman']:.3f}, {m['ause']:.3f} "
                                              f"(random {m['ause_random']:.3f})"),
        ("  CRPS of samples; MAE of mean, bicubic", f"{m['sr_crps']:.5f}; {m['sr_mae']:.5f}, {m['bicubic_mae']:.5f}"),
    ]
    bands = m.get("per_band", {})
    if len(bands.get("sr_psnr", [])) > 1:  # several bands: each one's figures
        pairs = {"PSNR SR / bicubic": ("sr_psnr", "bicubic_psnr", ".2f"),
                 "RMSE SR / bicubic, data units": ("sr_rmse_units", "bicubic_rmse_units", ".4g")}
        for name, (a, b, style) in pairs.items():
            if a in bands:
                rows.append((f"  per band: {name}", "  ".join(f"{u:{style}}/{v:{style}}" for u, v in
                                                              zip(bands[a], bands[b], strict=True))))
    if "evaluation_seconds" in m:
        spent = m["evaluation_seconds"]
        share = f" ({100 * spent / (spent + seconds):.0f} % of training and evaluation)" if seconds else ""
        rows.append(("evaluation of the test set", f"{clock(spent)}{share}"))
    width = max(len(name) for name, _ in rows)
    trained = f"in {seconds:.1f} s" if seconds else "trained earlier, evaluated"  # no seconds: --evaluate
    head = (f"{'VAE' if vae else 'SRVAE'} on {config.dataset}: guide {config.guide}, prior {config.prior}, "
            f"likelihood {config.likelihood}, objective {config.objective}, {config.epochs} epochs {trained} on "
            f"{config.device}")
    if config.likelihood == "discretized":
        note = (f"(discretized likelihood: −ELBO bounds {target}, a probability mass on "
                f"{m['levels']} levels per pixel{'' if vae else ', comparable with a VAE’s −log P(x)'})")
    else:
        dims = "k_x" if vae else "k_x + k_y"
        bins = (f"bits/dim add the 1/{m['levels']:.6g} bin width of each counted dimension"
                if (config.normalization or {}).get("integer", True)
                else "continuous pixels: bits/dim of the density in normalized units, no bins")
        comparable = "" if vae else ", not comparable with a VAE"
        note = f"(−ELBO bounds {target}, a density on {dims} dims{comparable}; {bins})"
    return "\n".join([head, *(f"  {name:<{width}}  {value}" for name, value in rows), note])
