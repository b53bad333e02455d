"""Data sets and the downscaling d(x). Imports nothing from the rest of the project (SPEC §8)."""

from data.digits import load_digits
from data.downscale import DOWNSCALE_MODES, downscale, quantize, upsample
from data.images import ImageData

DATASETS = {"digits": load_digits}


def load_dataset(name: str) -> ImageData:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]()


__all__ = ["DATASETS", "DOWNSCALE_MODES", "ImageData", "downscale", "load_dataset", "quantize", "upsample"]
