"""Checkpoints and the run's other files: written atomically, read back safely.

A checkpoint holds state dicts, tensors and plain values only, so ``torch.load(weights_only=True)``
reads it and a file crafted to run code when unpickled is refused before anything in it runs.
"""

import csv
import io
import json
import os
from pathlib import Path

import torch

from data.errors import one_line

CHECKPOINT_FORMAT = 1
REQUIRED = ("format", "config", "srvae", "guide")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: the message is one line saying why."""


def write_atomically(path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to the disk, then rename it over
    ``path``: a crash at any moment leaves either the old file or the new one, never a truncated one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path, value) -> None:
    write_atomically(path, (json.dumps(value, indent=2) + "\n").encode())


def write_history(path, history: list[dict]) -> None:
    """The history rows as CSV: every column any row has, in the order they first appear (rows of a run
    resumed from an older checkpoint may lack later columns: left empty)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(key for row in history for key in row)))
    writer.writeheader()
    writer.writerows(history)
    write_atomically(path, text.getvalue().encode())


def save_checkpoint(path, srvae, guide, config: dict, **extra) -> None:
    """The model's and guide's state dicts, the run's config and ``extra`` (training state, history,
    metrics), written atomically."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "config": config, "srvae": srvae.state_dict(),
                "guide": guide.state_dict(), **extra}, buffer)
    write_atomically(path, buffer.getvalue())


def load_checkpoint(path, map_location="cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)


def read_checkpoint(path: Path, map_location="cpu") -> dict:
    """The checkpoint at ``path``, or ``CheckpointError`` when it is missing, unreadable (corrupt, or
    carrying anything but tensors and plain values), not ours, or of another format."""
    if not path.is_file():
        raise CheckpointError("no such file")
    try:
        checkpoint = load_checkpoint(path, map_location)
    except Exception as error:  # a corrupt file, or one that is not tensors and plain values
        raise CheckpointError(f"not a readable checkpoint ({one_line(error, 120)})") from None
    if not isinstance(checkpoint, dict) or not set(REQUIRED) <= set(checkpoint):
        raise CheckpointError("not an SRVAE-Pyro checkpoint (missing config or state dicts)")
    if checkpoint["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint format {checkpoint['format']}, this version reads format "
                              f"{CHECKPOINT_FORMAT}")
    return checkpoint


RENAMED = {"p_u.own_encoder.": "p_u.encoder."}  # a VampPrior's own encoder (with a local guide), before


def load_states(checkpoint: dict, model, guide) -> None:
    """Load the checkpoint's state dicts into ``model`` and ``guide`` built from its config; a
    mismatch is a ``CheckpointError`` naming the first entry that differs."""
    modules = {"srvae": model, "guide": guide}
    states = {name: renamed(checkpoint[name]) for name in modules}
    fill_shared(states, modules)
    for name, module in modules.items():
        difference = first_difference(module.state_dict(), states[name])
        if difference:
            raise CheckpointError(f"its state dicts do not match the architecture its configuration describes "
                                  f"({name}: {difference})")
        module.load_state_dict(states[name])


def renamed(state: dict) -> dict:
    """``state`` with the keys of older versions under their present names (``RENAMED``)."""
    out = {}
    for key, value in state.items():
        for old, new in RENAMED.items():
            key = new + key[len(old):] if key.startswith(old) else key
        out[key] = value
    return out


def fill_shared(states: dict, modules: dict) -> None:
    """Complete ``states`` (name → saved state dict) where modules share a tensor: a VampPrior holds the
    guide's encoder, a semi-amortized guide the model it refines against, so the tensor has a key in
    each; a checkpoint written before they were registered in both has it under one of them."""
    places = {}
    for name, module in modules.items():
        for key, tensor in module.state_dict(keep_vars=True).items():
            places.setdefault(id(tensor), []).append((name, key))
    for shared in places.values():
        saved = [states[name][key] for name, key in shared if key in states[name]]
        if saved:
            for name, key in shared:
                states[name].setdefault(key, saved[0])


def first_difference(expected: dict, saved: dict) -> str | None:
    """The first entry missing, unexpected or of another shape in ``saved``, in words; None if none."""
    for key, value in expected.items():
        if key not in saved:
            return f"{key} is missing"
        if not isinstance(saved[key], torch.Tensor) or saved[key].shape != value.shape:
            shape = list(saved[key].shape) if isinstance(saved[key], torch.Tensor) else type(saved[key]).__name__
            return f"{key} is {shape} in the checkpoint, {list(value.shape)} here"
    extra = [key for key in saved if key not in expected]
    return f"{extra[0]} is not part of this architecture" if extra else None


class RunCheckpoints:
    """The ``checkpoint.pt`` and ``history.csv`` of a run in ``out``: rewritten (atomically) each time
    the training loop hands over its state, so the folder always holds the last one complete."""

    def __init__(self, out: Path, model, guide, config: dict):
        self.out, self.model, self.guide, self.config = Path(out), model, guide, config
        self.training = None

    def __call__(self, training: dict) -> None:
        self.training = training
        history = training["progress"]["history"]
        self.save(history=history)
        if history:
            write_history(self.out / "history.csv", history)

    def save(self, **extra) -> None:
        save_checkpoint(self.out / "checkpoint.pt", self.model, self.guide, self.config, training=self.training,
                        **extra)
