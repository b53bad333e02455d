"""The explicit ELBO of SPEC §4 (seed eq. 10–16, corrected), term by term.

    ELBO(x) = E_{q(u|y) q(z|x)}[log p(x | y, z)]  + E_{q(u|y)}[log p(y | u)]
              − KL(q(u|y) ‖ p(u))                  − E_{q(u|y)}[KL(q(z|x) ‖ p(z|y,u))]

Every distribution is read off traces of the same model and guide functions that Pyro's
``Trace_ELBO`` runs, so there is one source of truth for each conditional, and a prior line
edited in the model is honoured here too. The reconstruction terms use the decoders' explicit
formula (seed eq. 16 corrected, or its discretized form) at the traced means. The KLs are
closed-form where they exist; the two reconstruction terms (and the average over u inside
KL_z) are Monte-Carlo averages over ``num_samples`` draws of the guide.
"""

from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from torch.distributions import Independent, MixtureSameFamily, Normal, kl_divergence

MIXTURE_KL = ("tight", "convexity", "mc")


@dataclass(frozen=True)
class ELBOTerms:
    """The four terms of SPEC §4 per image (tensors of shape (N,), nats), and how the KL to the prior
    was got. For the VAE baseline rec_y = KL_u = 0 and kl_z is KL(q(z|x) ‖ p(z))."""

    rec_x: torch.Tensor
    rec_y: torch.Tensor
    kl_u: torch.Tensor
    kl_z: torch.Tensor
    prior_kl_method: str

    @property
    def elbo(self) -> torch.Tensor:
        return self.rec_x + self.rec_y - self.kl_u - self.kl_z


def explicit_elbo(model, guide, x=None, y=None, num_samples=1, mixture_kl="tight", index=None) -> ELBOTerms:
    """ELBO(x) per image, each term separately (SPEC §4).

    ``guide`` is a guide function with the model's signature; ``index`` holds the images' positions
    in their data set (for per-datapoint guides). ``mixture_kl`` chooses how
    KL(q(u|y) ‖ p(u)) is bounded when p(u) is a mixture: "tight" (−log Σᵢ wᵢ e^{−KLᵢ}),
    "convexity" (the seed's Σᵢ wᵢ KLᵢ) or "mc" (a Monte-Carlo estimate, no bound).
    """
    if mixture_kl not in MIXTURE_KL:
        raise ValueError(f"unknown mixture KL {mixture_kl!r}; choose from {', '.join(MIXTURE_KL)}")
    guide_trace, model_trace = guide_and_model_traces(model.model, guide, x, y, num_samples, index)
    p, q = model_trace.nodes, guide_trace.nodes
    if not model.models_y:  # the VAE baseline: E log p(x|z) − KL(q(z|x) ‖ p(z))
        rec_x = model.p_x_given_z.log_likelihood(x, p["x"]["fn"].base_dist.loc, p["x"]["fn"].base_dist.scale)
        kl_z, method = kl_to_prior(q["z"]["fn"], p["z"]["fn"], q["z"]["value"], mixture_kl)
        zero = torch.zeros_like(kl_z.mean(0))
        return ELBOTerms(rec_x.mean(0), zero, zero, kl_z.mean(0), method)
    y = p["y"]["value"]
    rec_x = model.p_x_given_yz.log_likelihood(x, p["x"]["fn"].base_dist.loc, p["x"]["fn"].base_dist.scale)
    rec_y = model.p_y_given_u.log_likelihood(y, p["y"]["fn"].base_dist.loc, p["y"]["fn"].base_dist.scale)
    kl_u, method = kl_to_prior(q["u"]["fn"], p["u"]["fn"], q["u"]["value"], mixture_kl)
    kl_z = kl_divergence(q["z"]["fn"], p["z"]["fn"])
    return ELBOTerms(rec_x.mean(0), rec_y.mean(0), kl_u.mean(0), kl_z.mean(0), method)


def guide_and_model_traces(model, guide, x=None, y=None, num_samples=1, index=None):
    """Traces of ``num_samples`` draws of the guide per image (vectorized in a plate at dim −2),
    and of the model replayed on them: the joint samples (u, z) ~ q(u|y) q(z|x) of SPEC §4."""
    device = (x if x is not None else y).device
    with pyro.plate("samples", num_samples, dim=-2, device=device):
        guide_trace = poutine.trace(guide).get_trace(x, y, index=index)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, y, index=index)
    return guide_trace, model_trace


def kl_to_prior(q, prior, sample, mixture_kl="tight"):
    """KL(q ‖ prior), e.g. KL(q(u|y) ‖ p(u)), and the name of the method: closed form where torch
    has one, an analytic upper bound for a Gaussian mixture prior, Monte Carlo (at ``sample``) otherwise."""
    if isinstance(prior, MixtureSameFamily) and is_diagonal_normal(q) and mixture_kl != "mc":
        return mixture_kl_bound(q, prior, mixture_kl), f"{mixture_kl} bound"
    if not isinstance(prior, MixtureSameFamily):
        try:
            return kl_divergence(q, prior), "closed form"
        except NotImplementedError:
            pass
    return q.log_prob(sample) - prior.log_prob(sample), "Monte Carlo"


def is_diagonal_normal(d) -> bool:
    return isinstance(d, Independent) and isinstance(d.base_dist, Normal) and d.reinterpreted_batch_ndims == 1


def mixture_kl_bound(q: Independent, p: MixtureSameFamily, kind: str = "tight") -> torch.Tensor:
    """Upper bounds on KL(q ‖ Σᵢ wᵢ pᵢ) for diagonal Gaussians q, pᵢ (SPEC §4, seed §4).

    "convexity": Σᵢ wᵢ KL(q ‖ pᵢ)          (the seed's bound)
    "tight":     −log Σᵢ wᵢ exp(−KL(q ‖ pᵢ)) (optimal variational weights; never looser)
    """
    base = q.base_dist
    q_each = Independent(Normal(base.loc.unsqueeze(-2), base.scale.unsqueeze(-2)), 1)
    kl_each = kl_divergence(q_each, p.component_distribution)  # (..., K)
    log_w = torch.log_softmax(p.mixture_distribution.logits, dim=-1)
    if kind == "tight":
        return -torch.logsumexp(log_w - kl_each, dim=-1)
    if kind == "convexity":
        return (log_w.exp() * kl_each).sum(-1)
    raise ValueError(f"unknown mixture bound {kind!r}; choose tight or convexity")
