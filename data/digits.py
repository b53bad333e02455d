"""scikit-learn's bundled 8×8 handwritten digits: the embedded, offline default data set."""

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from data.images import ImageData

DIGIT_LEVELS = 17  # pixel values 0..16


def digits_file() -> Path:
    """The digits as scikit-learn ships them (one row per image: 64 pixel values, then the label),
    found without importing scikit-learn, whose import costs seconds in every run."""
    package = importlib.util.find_spec("sklearn").submodule_search_locations[0]
    return Path(package) / "datasets" / "data" / "digits.csv.gz"


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    """1797 images of shape (1, 8, 8), pixel levels 0..16, split train/test by a fixed seed.

    The split does not depend on the run's ``--seed``, so every run is tested on the same images.
    """
    with gzip.open(digits_file(), "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float32)
    values = torch.as_tensor(rows[:, :-1]).reshape(-1, 1, 8, 8)
    labels = torch.as_tensor(rows[:, -1]).long()
    order = torch.randperm(len(values), generator=torch.Generator().manual_seed(split_seed))
    n_test = round(test_fraction * len(values))
    test, train = order[:n_test], order[n_test:]
    return ImageData("digits", values[train], labels[train], values[test], labels[test], DIGIT_LEVELS)
