"""The importance-weighted estimate of log p(x, y) and active units (SPEC §4, §7)."""

import math

import torch
from pyro import poutine
from pyro.poutine.util import prune_subsample_sites

from evaluation.elbo import chunks, per_pass
from model.elbo import guide_and_model_traces


def log_density(trace, exclude=()) -> torch.Tensor:
    """Σ over the trace's sample sites (but those named in ``exclude``) of log fn(value), per draw
    and image: (S, N)."""
    total = 0.0
    for name, site in prune_subsample_sites(trace).nodes.items():
        if site["type"] == "sample" and name not in exclude:
            total = total + site["fn"].log_prob(site["value"])
    return total


@torch.no_grad()
def log_weights(model, guide, x, y=None, num_samples=1, index=None) -> torch.Tensor:
    """log w = log p(x, y, u, z) − log q(u, z, y | x) for ``num_samples`` guide draws per image: (S, N).

    The Delta site of y contributes log 1 = 0 to the guide's side (SPEC §3).
    """
    guide_trace, model_trace = guide_and_model_traces(model.model, guide.guide, x, y, num_samples, index)
    return log_density(model_trace) - log_density(guide_trace)


@torch.no_grad()
def importance_weighted_log_likelihood(model, guide, x, y=None, num_samples=1000, sample_chunk=64,
                                       image_chunk=64, progress=None) -> torch.Tensor:
    """log p(x, y) ≥ log (1/K) Σₖ wₖ per image, K = ``num_samples``: shape (N,).

    The log-sum-exp runs over the K draws of each image, never over a batch. Draws are made
    ``sample_chunk`` at a time and images ``image_chunk`` at a time, so peak memory depends on
    the chunk sizes, not on K or on the number of images. 64 images × 64 draws per pass, as for the
    ELBO, keep the activations small enough for the CPU's caches; larger images take fewer draws per
    pass (``per_pass``). ``progress(done)`` is called with the images done after each chunk.
    """
    if num_samples < 1:
        raise ValueError(f"the number of importance samples must be positive, got {num_samples}")
    estimates = []
    for xc, yc, index in chunks(x, y, image_chunk):
        running = None  # log Σ_k w_k over the chunks drawn so far, per image
        step = per_pass(sample_chunk, len(xc), xc[0].numel())
        for start in range(0, num_samples, step):
            draws = min(step, num_samples - start)
            lw = torch.logsumexp(log_weights(model, guide, xc, yc, draws, index), dim=0)
            running = lw if running is None else torch.logaddexp(running, lw)
        estimates.append(running - math.log(num_samples))
        if progress is not None:
            progress(sum(len(part) for part in estimates))
    return torch.cat(estimates)


@torch.no_grad()
def active_units(guide, x, y=None, threshold=0.01, image_chunk=1024) -> dict:
    """Latent dimensions d with Cov_x(E_q[u_d]) > ``threshold`` (Burda et al.'s criterion), for each
    of u and z that the guide infers."""
    means = {}
    for xc, yc, index in chunks(x, y, image_chunk):
        trace = poutine.trace(guide.guide).get_trace(xc, yc, index=index)
        for name in ("u", "z"):
            if name in trace.nodes:
                means.setdefault(name, []).append(trace.nodes[name]["fn"].mean)
    return {f"active_{name}": int((torch.cat(m).var(0) > threshold).sum()) for name, m in means.items()}
