"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision's own dataset classes.

Nothing is downloaded unless asked (``download=True``); missing files are a ``DataError`` that
names the folder and the files expected, never torchvision's traceback.
"""

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from data.errors import DataError, one_line
from data.images import ImageData


@dataclass(frozen=True)
class Benchmark:
    torchvision_class: str
    folder: str  # where torchvision looks, under the data directory
    files: tuple  # what must be there
    source: str  # what --download fetches


IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
BENCHMARKS = {
    "mnist": Benchmark("MNIST", "MNIST/raw", IDX, "the four MNIST .gz files"),
    "fashion-mnist": Benchmark("FashionMNIST", "FashionMNIST/raw", IDX, "the four Fashion-MNIST .gz files"),
    "cifar10": Benchmark("CIFAR10", "cifar-10-batches-py",
                         (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
                         "cifar-10-python.tar.gz (163 MB)"),
}


def as_tensors(split) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, C, H, W) and int64 labels from a torchvision dataset object."""
    images = torch.as_tensor(split.data)
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)  # CIFAR is stored NHWC
    return images.contiguous(), torch.as_tensor(split.targets, dtype=torch.long)


def load_benchmark(name: str, data_dir="data", download: bool = False) -> ImageData:
    """The train and test splits of ``name``, 256 pixel levels, from ``data_dir``."""
    from torchvision import datasets

    spec = BENCHMARKS[name]
    folder = Path(data_dir) / spec.folder
    cls = getattr(datasets, spec.torchvision_class)
    if download:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # torchvision reports its progress on stdout
                cls(str(data_dir), train=True, download=True)
        except Exception as error:
            raise DataError(f"{name}: could not download {spec.source} into {folder} ({one_line(error)}); "
                            f"copy the files {', '.join(spec.files)} there by hand") from None
    missing = [f for f in spec.files if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{name}: {len(missing)} of its files missing in {folder}/ ({', '.join(missing)}); "
                        f"pass --download to fetch {spec.source}, or copy them there and set --data-dir")
    try:
        train, test = (as_tensors(cls(str(data_dir), train=split)) for split in (True, False))
    except Exception as error:  # a truncated file, a failed checksum
        raise DataError(f"{name}: the files in {folder}/ could not be read ({one_line(error)}); "
                        "delete them and fetch them again with --download") from None
    return ImageData(name, train[0], train[1], test[0], test[1], levels=256)

