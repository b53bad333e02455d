"""The trained models that ship with the project, named in place of a checkpoint path
(``superresolve.py sentinel2-rgbn scene.tif``), and how one is made from a run:

    python -m experiment.bundled runs/sentinel2-rgbn sentinel2-rgbn

keeps the model's and the guide's weights, the run's configuration and its octave ratio
(``experiment.calibration``), no optimizer state, no history: readable with ``torch.load(path, weights_only=True)``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "models"
BUNDLED = {"sentinel2-rgbn": "Sentinel-2 B02, B03, B04, B08 at 10 m → 5 m, trained on four places (L1C and L2A); "
                             "input in reflectance × 10 000 (models/README.md)"}


def bundled_path(name: str) -> Path:
    return FOLDER / f"{name}.pt"


def resolve_checkpoint(given: Path) -> Path:
    """A checkpoint path from what the user gave: a bundled model's name, a run's folder, or the file itself."""
    if str(given) in BUNDLED and not given.exists():
        return bundled_path(str(given))
    return given / "checkpoint.pt" if given.is_dir() else given


def bundle(run: Path, name: str) -> Path:
    """Write the run's model as ``models/NAME.pt``: weights and configuration only."""
    import io

    import torch

    from training.checkpoint import REQUIRED, read_checkpoint, write_atomically

    checkpoint = read_checkpoint(run / "checkpoint.pt" if run.is_dir() else run)
    buffer = io.BytesIO()
    torch.save({key: checkpoint[key] for key in (*REQUIRED, "calibration") if key in checkpoint}, buffer)
    FOLDER.mkdir(exist_ok=True)
    write_atomically(bundled_path(name), buffer.getvalue())
    return bundled_path(name)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m experiment.bundled RUN_DIR NAME")
    print(bundle(Path(sys.argv[1]), sys.argv[2]))
