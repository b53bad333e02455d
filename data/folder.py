"""The user's own images (issue 5): a folder with ``hr/`` and, optionally, ``lr/``.

    FOLDER/hr/NAME.{png,tif,tiff,npy}   the HR images x
    FOLDER/lr/NAME.{png,tif,tiff,npy}   their LR images y, same names (else y = d(x))

Any number of bands: a PNG's channels, a TIFF's samples or planes, the first axis of a 3-D
``.npy`` array (bands first, C × H × W; a 2-D array is one band). Every HR image has the same
shape, every LR image is exactly 1/s of it. The images are split into train and test by a fixed
seed and normalized band by band with one map for x and y, from the training images:
x = (v − low)/span (``data.images``), saved in the run's config so outputs map back.
"""

from pathlib import Path

import numpy as np
import torch

from data.errors import DataError, one_line
from data.images import ImageData

SUFFIXES = (".png", ".tif", ".tiff", ".npy")


def read_image(path: Path) -> np.ndarray:
    """One image as an array (C, H, W), in its own dtype."""
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False)
            return array[None] if array.ndim == 2 else array
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                array, axes = series.asarray(), series.axes
            if array.ndim == 3 and axes[-1] in "SC":  # samples last (RGB-like): move them first
                array = np.moveaxis(array, -1, 0)
            return array[None] if array.ndim == 2 else array
        from PIL import Image

        with Image.open(path) as image:
            array = np.asarray(image)
        return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    except Exception as error:
        raise DataError(f"{path}: cannot read it as an image ({one_line(error)}); "
                        "replace or remove the file") from None


def image_files(folder: Path) -> dict:
    """{name without suffix: path} of the images in ``folder``."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in SUFFIXES:
            if path.stem in files:
                raise DataError(f"{path}: two images named {path.stem!r} in {folder}; keep one")
            files[path.stem] = path
    return files


def read_stack(files: dict, shape: tuple | None, what: str) -> np.ndarray:
    """Every image of ``files`` stacked (N, C, H, W); each must have ``shape`` (or the first one's)."""
    arrays = []
    for path in files.values():
        array = read_image(path)
        if array.ndim != 3:
            raise DataError(f"{path}: a {array.ndim}-D array; give images as H × W or bands × H × W")
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise DataError(f"{path}: pixels of type {array.dtype}; give integer or floating-point pixels")
        if not np.isfinite(array).all():
            raise DataError(f"{path}: has NaN or infinite pixels; fill or mask them before training")
        if shape is None:
            shape = array.shape
        if array.shape != shape:
            raise DataError(f"{path}: {describe(array.shape)}, but {what} must be {describe(shape)} like "
                            f"{next(iter(files.values())).name}")
        arrays.append(array)
    kinds = {np.issubdtype(a.dtype, np.integer) for a in arrays}
    if len(kinds) > 1:
        raise DataError(f"{next(iter(files.values())).parent}: mixes integer and floating-point images; "
                        "convert them to one type")
    return np.stack(arrays)


def describe(shape) -> str:
    return f"{shape[0]} band{'s' if shape[0] != 1 else ''} of {shape[1]}×{shape[2]}"


def band_normalization(images: list[np.ndarray], integer: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per band, ``low`` = the minimum and ``span`` = max − min (+ 1 for integer pixels, whose
    dequantization noise fills [v, v + 1)) over the training images, so they map into [0, 1]."""
    low = np.min([a.min(axis=(0, 2, 3)) for a in images], axis=0).astype(np.float64)
    high = np.max([a.max(axis=(0, 2, 3)) for a in images], axis=0).astype(np.float64)
    span = high - low + (1.0 if integer else 0.0)
    span[span <= 0] = 1.0  # a constant band
    return torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(span, dtype=torch.float32)


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 stays uint8 (small); everything else becomes float32 (exact for integers below 2²⁴)."""
    return torch.from_numpy(array) if array.dtype == np.uint8 else torch.from_numpy(array.astype(np.float32))


def load_folder(root, scale: int = 2, crop: int | None = None, test_fraction: float = 0.2,
                split_seed: int = 0) -> ImageData:
    """The paired (or HR-only) images of ``root``; raises ``DataError`` naming any bad file."""
    root = Path(root)
    hr_dir, lr_dir = root / "hr", root / "lr"
    if not hr_dir.is_dir():
        raise DataError(f"{root}: no hr/ folder; put the HR images in {hr_dir}/ (and their LR images, "
                        "same names, in lr/)")
    hr_files = image_files(hr_dir)
    if len(hr_files) < 2:
        raise DataError(f"{hr_dir}: {len(hr_files)} images ({', '.join(SUFFIXES)}); need at least 2, "
                        "one of them to test on")
    x = read_stack(hr_files, None, "every HR image")
    c, h, w = x.shape[1:]
    if h % scale or w % scale:
        raise DataError(f"{hr_dir}: images of {h}×{w} are not divisible by --scale {scale}; crop them to a "
                        f"multiple of {scale}")
    y = None
    if lr_dir.is_dir():
        lr_files = image_files(lr_dir)
        unmatched = sorted(set(hr_files) ^ set(lr_files))
        if unmatched:
            side = "hr" if unmatched[0] in hr_files else "lr"
            raise DataError(f"{root / side / unmatched[0]}.*: has no partner in {'lr' if side == 'hr' else 'hr'}/; "
                            "hr/ and lr/ must hold the same file names")
        y = read_stack({name: lr_files[name] for name in hr_files}, (c, h // scale, w // scale),
                       f"every LR image (HR size / --scale {scale})")
        if (x.dtype.kind in "iu") != (y.dtype.kind in "iu"):
            raise DataError(f"{lr_dir}: LR images are {y.dtype}, HR images {x.dtype}; give both as integers "
                            "or both as floats")
    if crop is not None and (crop % scale or crop > min(h, w)):
        raise DataError(f"--crop {crop}: must be a multiple of --scale {scale} and at most the image size "
                        f"{h}×{w}")
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    n_test = max(1, round(test_fraction * len(x)))
    test, train = order[:n_test].numpy(), order[n_test:].numpy()
    integer = x.dtype.kind in "iu"
    low, span = band_normalization([x[train]] + ([] if y is None else [y[train]]), integer)
    levels = int(span[0]) if integer and bool((span == span[0]).all()) else None
    labels = torch.full((len(x),), -1, dtype=torch.long)
    return ImageData("folder", as_tensor(x[train]), labels[train], as_tensor(x[test]), labels[test], levels,
                     low=low, span=span, integer=integer,
                     train_lr=None if y is None else as_tensor(y[train]),
                     test_lr=None if y is None else as_tensor(y[test]), crop=crop, scale=scale)
