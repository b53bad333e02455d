"""Test-set ELBO: Pyro's Monte-Carlo ``Trace_ELBO`` beside the explicit ELBO (SPEC §4, §7)."""

import math

import torch
from pyro.infer import Trace_ELBO

from model.elbo import explicit_elbo

PIXELS_PER_PASS = 2**20  # image pixels × draws per forward pass: sized for the CPU's caches


def per_pass(limit: int, draws: int, pixels: int, budget: int = PIXELS_PER_PASS) -> int:
    """How many images (or draws) one pass takes: at most ``limit``, and at most what keeps
    draws × pixels under ``budget`` (at least 1). For the 8×8 digits the limit decides; for
    larger images the budget does, so conv activations stay small."""
    return max(1, min(limit, budget // (draws * pixels)))


def chunks(x, y, size, index=None):
    """(x, y, index) in chunks of ``size`` images; ``index`` gives the images' positions in their
    data set (by default their positions in x); y may be None."""
    if index is None:
        index = torch.arange(len(x), device=x.device)
    for start in range(0, len(x), size):
        stop = min(start + size, len(x))
        yield x[start:stop], None if y is None else y[start:stop], index[start:stop]


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean of independent repeats and its standard error std/√R."""
    return values.mean().item(), (values.std() / math.sqrt(len(values))).item()


def repeats_needed(pilot: torch.Tensor, target_se: float, most: int) -> int:
    """Stein's two-stage rule: from the standard deviation s of the ``pilot`` repeats, the number R of
    repeats whose mean has the standard error s/√R ≤ ``target_se``; at least the pilot's, at most
    ``most``."""
    sd = pilot.std().item()
    needed = math.ceil((sd / target_se) ** 2) if math.isfinite(sd) else most
    return max(len(pilot), min(most, needed))


def repeated(estimate, repeats: int, target_se: float | None = None, max_particles: int | None = None,
             progress=None, particles: int = 1) -> torch.Tensor:
    """Independent repeats of ``estimate()`` (a 1-D tensor of terms, the first the one whose standard
    error counts; each uses ``particles`` particles per image), stacked (R, terms): ``repeats`` of
    them; or, with ``target_se``, those as a pilot and then as many as ``repeats_needed``, with at
    most ``max_particles`` per image in all. ``progress(done, total)`` counts the particles per image."""
    rows, total = [], repeats
    while len(rows) < total:
        rows.append(estimate())
        if target_se is not None and len(rows) == repeats:
            most = repeats if max_particles is None else max(repeats, max_particles // particles)
            total = repeats_needed(torch.stack(rows)[:, 0], target_se, most)
        if progress is not None:
            progress(len(rows) * particles, total * particles)
    return torch.stack(rows)


@torch.no_grad()
def pyro_neg_elbo_repeats(model, guide, x, y=None, num_particles=64, repeats=10, chunk=64, index=None,
                          target_se=None, max_particles=None, progress=None) -> torch.Tensor:
    """Independent estimates of the −ELBO per image by Pyro's ``Trace_ELBO`` with vectorized particles,
    each averaging ``num_particles`` particles over the whole set: ``repeats`` of them, or as many as
    reach a standard error of their mean of ``target_se`` (``repeated``) with at most ``max_particles``
    per image in all. At most ``chunk`` images per pass (``per_pass``): 64 images × 64 particles ran
    faster on the CPU than 512 × 64, whose activations overflow the caches."""
    elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=1)
    size = per_pass(chunk, num_particles, x[0].numel())

    def estimate():
        return torch.tensor([sum(elbo.loss(model.model, guide.guide, xc, yc, index=positions)
                                 for xc, yc, positions in chunks(x, y, size, index)) / len(x)], dtype=torch.float64)

    return repeated(estimate, repeats, target_se, max_particles, progress, num_particles)[:, 0]


def pyro_neg_elbo(model, guide, x, y=None, num_particles=64, repeats=10, chunk=64, index=None, **precision
                  ) -> tuple[float, float]:
    """−ELBO per image by Pyro's ``Trace_ELBO``: the mean of ``pyro_neg_elbo_repeats`` and its standard
    error."""
    return mean_and_se(pyro_neg_elbo_repeats(model, guide, x, y, num_particles, repeats, chunk, index, **precision))


@torch.no_grad()
def explicit_neg_elbo(model, guide, x, y=None, num_samples=64, repeats=10, chunk=64, mixture_kl="tight",
                      index=None, target_se=None, max_particles=None, progress=None) -> dict:
    """The explicit −ELBO per image and each term, as means with standard errors over independent
    repeats of ``num_samples`` draws per image: ``repeats`` of them, or as many as reach a standard
    error of ``target_se`` on the −ELBO (``repeated``) with at most ``max_particles`` draws per image."""
    size, kl_method = per_pass(chunk, num_samples, x[0].numel()), []

    def estimate():
        sums = torch.zeros(5, dtype=torch.float64)
        for xc, yc, positions in chunks(x, y, size, index):
            t = explicit_elbo(model, guide.guide, xc, yc, num_samples, mixture_kl, positions)
            terms = [-t.elbo, t.rec_x, t.rec_y, t.kl_u, t.kl_z]
            sums += torch.stack([term.sum() for term in terms]).double().cpu()
            kl_method[:] = [t.prior_kl_method]
        return sums / len(x)

    rows = repeated(estimate, repeats, target_se, max_particles, progress, num_samples)
    names = ("neg_elbo", "rec_x", "rec_y", "kl_u", "kl_z")
    result = {name: mean_and_se(rows[:, i]) for i, name in enumerate(names)}
    result.update(prior_kl_method=kl_method[0], repeats=len(rows))
    return result


def bits_per_dim(neg_log_likelihood: float, k_x: int, k_y: int, levels: int, discrete: bool = False) -> dict:
    """Bits per dimension of −log p(x, y) (SPEC §4).

    For a continuous density on dequantized data, the data are levels on a grid of bin width
    1/``levels``: turning the density into a probability mass adds (k_x + k_y)·log(levels)
    nats. A discretized likelihood is a mass already (``discrete``). The mass is divided by
    k_x·ln 2 (the srVAE paper's convention) or by (k_x + k_y)·ln 2.
    """
    mass_nats = neg_log_likelihood + (0 if discrete else (k_x + k_y) * math.log(levels))
    return {"bits_per_dim_kx": mass_nats / (k_x * math.log(2)),
            "bits_per_dim_kx_ky": mass_nats / ((k_x + k_y) * math.log(2))}


def evaluate_elbo(model, guide, x, y=None, levels=256, num_particles=64, repeats=10, mixture_kl="tight",
                  target_se=None, max_particles=None, stages=None) -> dict:
    """Pyro's and the explicit −ELBO per image, their difference in standard errors, each explicit
    term, and bits/dim. Each estimate repeats ``num_particles`` particles per image ``repeats`` times,
    or, with ``target_se``, until its standard error reaches that (``repeated``), with at most
    ``max_particles`` per image. ``stages`` (``evaluation.progress.Stages``) shows the progress."""
    def stage(name):
        return None if stages is None else stages(name, repeats * num_particles, "particles per image")

    precision = {"target_se": target_se, "max_particles": max_particles}
    pyro_rows = pyro_neg_elbo_repeats(model, guide, x, y, num_particles, repeats, progress=stage(
        "−ELBO by Pyro's Trace_ELBO"), **precision)
    pyro_mean, pyro_se = mean_and_se(pyro_rows)
    explicit = explicit_neg_elbo(model, guide, x, y, num_particles, repeats, mixture_kl=mixture_kl,
                                 progress=stage("explicit −ELBO"), **precision)
    ex_mean, ex_se = explicit["neg_elbo"]
    se = math.hypot(pyro_se, ex_se)
    return {
        "pyro_neg_elbo": pyro_mean, "pyro_neg_elbo_se": pyro_se,
        "explicit_neg_elbo": ex_mean, "explicit_neg_elbo_se": ex_se,
        "difference": pyro_mean - ex_mean, "difference_in_se": (pyro_mean - ex_mean) / se if se > 0 else 0.0,
        **{name: explicit[name][0] for name in ("rec_x", "rec_y", "kl_u", "kl_z")},
        "prior_kl_method": explicit["prior_kl_method"],
        **bits_per_dim(ex_mean, model.k_x, model.k_y, levels, discrete=model.levels is not None),
        "particles": num_particles, "repeats": len(pyro_rows), "explicit_repeats": explicit["repeats"],
        "target_se": target_se, "max_particles": max_particles,
    }
