"""What produced a run (reproducibility): package versions and the git commit."""

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "torchvision", "pyro-ppl", "numpy", "scikit-learn", "matplotlib", "torchmetrics", "pillow",
            "tifffile", "tqdm")
ROOT = Path(__file__).resolve().parent.parent


def git(*args) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def provenance() -> dict:
    """Python's and each package's version, the code's git commit (None outside a git checkout) and
    whether tracked files differed from it."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import torch

    versions["torch"] = str(torch.__version__)  # the build too (e.g. +cu130), which the package metadata omits
    commit = git("rev-parse", "HEAD")
    changes = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"versions": versions, "git_commit": commit, "git_dirty": bool(changes) if commit else None}
