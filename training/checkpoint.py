"""Checkpoints hold state dicts and plain values only, so ``torch.load(weights_only=True)`` reads them."""

import os
from pathlib import Path

import torch

CHECKPOINT_FORMAT = 1


def save_checkpoint(path, srvae, guide, config: dict, **extra) -> None:
    """Write atomically: to a temporary file beside ``path``, then rename over it."""
    path = Path(path)
    state = {"format": CHECKPOINT_FORMAT, "config": config,
             "srvae": srvae.state_dict(), "guide": guide.state_dict(), **extra}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, map_location="cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)
