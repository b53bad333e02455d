"""scikit-learn's bundled 8×8 handwritten digits: the embedded, offline default data set."""

import torch

from data.images import ImageData

DIGIT_LEVELS = 17  # pixel values 0..16


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    """1797 images of shape (1, 8, 8), pixel levels 0..16, split train/test by a fixed seed.

    The split does not depend on the run's ``--seed``, so every run is tested on the same images.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    values = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(values), generator=torch.Generator().manual_seed(split_seed))
    n_test = round(test_fraction * len(values))
    test, train = order[:n_test], order[n_test:]
    return ImageData("digits", values[train], labels[train], values[test], labels[test], DIGIT_LEVELS)
