"""Every random-number stream a run draws from, saved and restored (a resumed run is the
uninterrupted run, bit for bit)."""

import random

import numpy as np
import torch


def rng_state() -> dict:
    """The states of torch's CPU and CUDA generators, Python's ``random`` and NumPy's global
    generator, as tensors and plain values (so ``torch.load(weights_only=True)`` reads them)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached]}


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` saved (the CUDA streams only where this machine has the same GPUs)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
