"""Small data sets written in the real formats, for the loaders' tests (nothing is downloaded)."""

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np

from data.benchmarks import BENCHMARKS


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (MNIST's format): magic 0x0000 08 NDIM (unsigned bytes), big-endian sizes, the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, name: str = "mnist", n_train: int = 20, n_test: int = 10, seed: int = 0) -> dict:
    """MNIST-format files for ``name`` (mnist or fashion-mnist) under ``root``; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {"train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
              "test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8)}
    folder = root / BENCHMARKS[name].folder
    for file, key in zip(BENCHMARKS[name].files, ("train", "train_labels", "test", "test_labels"), strict=True):
        write_idx(folder / file, arrays[key])
    return arrays


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0) -> tuple[dict, dict]:
    """CIFAR-10's pickled batches (rows of 3072 bytes, R then G then B planes) under ``root``.

    Returns the arrays and {file name: md5}: torchvision checks each file against the md5 of the
    real data set, so a test must declare these instead (the reading code stays torchvision's)."""
    rng = np.random.default_rng(seed)
    folder = root / BENCHMARKS["cifar10"].folder
    folder.mkdir(parents=True, exist_ok=True)
    arrays, md5 = {}, {}
    for name in BENCHMARKS["cifar10"].files:
        if name == "batches.meta":
            entry = {"label_names": [f"class {i}" for i in range(10)]}
        else:
            n = n_test if name == "test_batch" else per_batch
            arrays[name] = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
            entry = {"data": arrays[name].reshape(n, 3072), "labels": rng.integers(0, 10, n).tolist()}
        (folder / name).write_bytes(pickle.dumps(entry))
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    return arrays, md5


def write_folder(root: Path, n: int = 6, size: int = 16, scale: int = 2, bands: int = 1, suffix: str = ".png",
                 paired: bool = True, seed: int = 0, dtype=np.uint8) -> dict:
    """``n`` HR images (and LR images 1/scale their size, as independent noise) in hr/ and lr/."""
    rng = np.random.default_rng(seed)
    high = 256 if dtype == np.uint8 else 4000
    images = {}
    for kind, side in (("hr", size), ("lr", size // scale)) if paired else (("hr", size),):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            array = rng.integers(0, high, (bands, side, side)).astype(dtype)
            images[kind, f"img{i}"] = array
            write_image(root / kind / f"img{i}{suffix}", array)
    return images


def write_image(path: Path, array: np.ndarray) -> None:
    """Write a (C, H, W) array as PNG, TIFF (bands first, planar) or .npy."""
    if path.suffix == ".npy":
        np.save(path, array)
    elif path.suffix in (".tif", ".tiff"):
        import tifffile

        if array.shape[0] == 1:
            tifffile.imwrite(path, array[0], photometric="minisblack")
        else:
            tifffile.imwrite(path, array, photometric="minisblack", planarconfig="separate")
    else:
        from PIL import Image

        Image.fromarray(array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)).save(path)
