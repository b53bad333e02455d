"""Data sets and the downscaling d(x). Imports nothing from the rest of the project (SPEC §8)."""

from data.benchmarks import BENCHMARKS, load_benchmark
from data.digits import load_digits
from data.downscale import DOWNSCALE_MODES, downscale, quantize, upsample
from data.errors import DataError
from data.folder import SPLITS, UNITS, load_folder
from data.images import ImageData

DATASETS = {
    "digits": "scikit-learn's bundled 8×8 digits, works offline",
    "mnist": "MNIST 28×28 from --data-dir (torchvision)",
    "fashion-mnist": "Fashion-MNIST 28×28 from --data-dir (torchvision)",
    "cifar10": "CIFAR-10 32×32×3 from --data-dir (torchvision)",
    "folder": "your own images: --data-dir holds hr/ and optionally lr/ (PNG, TIFF or .npy, any bands)",
}


def load_dataset(name: str, data_dir="data", download: bool = False, scale: int = 2,
                 crop: int | None = None, split: str = "auto", augment: bool = False, discrete: bool = False,
                 normalization: dict | None = None, units: str = "auto") -> ImageData:
    """The data set ``name``; raises ``DataError`` (one line) when its files are missing or bad.
    ``split``, ``augment`` and ``units`` concern the ``folder`` data set (``data.folder``); ``discrete`` and a saved
    ``normalization`` are given to the data as they are built (``ImageData.with_options``)."""
    if name == "digits":
        data = load_digits()
    elif name in BENCHMARKS:
        data = load_benchmark(name, data_dir, download)
    elif name == "folder":
        data = load_folder(data_dir, scale, crop, split=split, augment=augment, units=units)
    else:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return data.with_options(discrete=discrete, normalization=normalization)


__all__ = ["DATASETS", "DOWNSCALE_MODES", "SPLITS", "UNITS", "DataError", "ImageData", "downscale", "load_dataset",
           "quantize", "upsample"]
