"""Schedules of training: the KL warm-up (the KL terms scaled by β from 0 to 1 over the first epochs) and
the learning rate's."""

import math

from pyro.poutine.messenger import Messenger

LATENT_SITES = ("u", "z")  # their log p − log q make up KL_u and KL_z; y and x are reconstructions


class ScaleSites(Messenger):
    """Like ``poutine.scale``, but only for the sample sites named in ``sites``: multiplies their
    log-densities by ``scale``. Applied to model and guide alike, it scales log p(u) − log q(u|y)
    and log p(z|y,u) − log q(z|x), i.e. the KL terms, and nothing else."""

    def __init__(self, scale: float, sites=LATENT_SITES):
        super().__init__()
        self.scale, self.sites = scale, tuple(sites)

    def _process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.sites:
            msg["scale"] = self.scale * msg["scale"]


def with_kl_scale(fn, scale: float):
    """``fn`` (a model or guide) with its KL sites scaled by ``scale``; ``fn`` itself at scale 1."""
    return fn if scale == 1.0 else ScaleSites(scale)(fn)


def kl_scale(epoch: int, fraction: float, warmup_epochs: int) -> float:
    """β at ``fraction`` ∈ (0, 1] of epoch ``epoch`` (counted from 1): linear from 0 to 1 over
    ``warmup_epochs`` epochs, then 1."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch - 1 + fraction) / warmup_epochs)


LR_SCHEDULES = {"cosine": "from --lr down to 1 % of it along half a cosine over the run's steps",
                "constant": "--lr throughout"}


def lr_factor(schedule: str, done: int, total: int) -> float:
    """The learning rate's multiplier after ``done`` of ``total`` steps: 1 throughout ("constant"), or
    0.01 + 0.99·½(1 + cos(π·done/total)) ("cosine": large steps early, small ones at the end, where
    they refine instead of kicking the model out of its minimum)."""
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose from {', '.join(LR_SCHEDULES)}")
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(done / max(total, 1), 1.0)))
