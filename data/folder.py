"""The user's own images: a folder with ``hr/`` and, optionally, ``lr/``.

    FOLDER/hr/NAME.{png,tif,tiff,npy}   the HR images x
    FOLDER/lr/NAME.{png,tif,tiff,npy}   their LR images y, same names (else y = d(x))

Any number of bands: a PNG's channels, a TIFF's samples or planes, the first axis of a 3-D
``.npy`` array (bands first, C × H × W; a 2-D array is one band). Every LR image is exactly 1/s
of its HR image. Two ways to split train from test (``SPLITS``):

- ``files`` (tiles of one size): whole images, by a fixed seed;
- ``rows`` (scenes, of any sizes, with ``crop`` = P): the last rows of every scene, a whole
  number of P-tiles and at least ``test_fraction`` of them, are cut into the fixed P×P test
  tiles; training crops are drawn from the rows above, through overlapping 2P×2P chips that
  hold every P×P window of that part (``chip_starts``), so no test pixel is ever in a training crop.

Both map every band with one normalization for x and y, x = (v − low)/span (``data.images``), saved
in the run's config so outputs map back; ``UNITS`` says how low and span are chosen.
"""

import math
from pathlib import Path

import numpy as np
import torch

from data.errors import DataError, one_line
from data.images import ImageData

SUFFIXES = (".png", ".tif", ".tiff", ".npy")
REFLECTANCE_FACTOR = 10_000.0  # Sentinel-2 L1C/L2A (and most optical products) store reflectance × 10 000
UNITS = {"auto": "reflectance for unsigned 16-bit integer images, range for any other",
         "reflectance": f"x = v / {REFLECTANCE_FACTOR:.0f} in every band: fixed, so a model applies to any scene "
                        "stored as reflectance × 10 000 (Sentinel-2 L1C and L2A)",
         "range": "each band's minimum and span over the training pixels, mapped to [0, 1] (arbitrary images)"}


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


SPLITS = {"auto": "rows for scenes (images of different sizes, or a single one), files for tiles of one size",
          "files": "whole images, by a fixed seed",
          "rows": "the last rows of every scene are the test tiles, training crops come from the rows above"}


def read_images(files: dict, shapes: list | None, what: str) -> list[np.ndarray]:
    """Every image of ``files``, each (C, H, W) with ``shapes[i]`` when given, else the first one's band count."""
    arrays = []
    for i, path in enumerate(files.values()):
        array = read_image(path)
        if array.ndim != 3:
            raise DataError(f"{path}: a {array.ndim}-D array; give images as H × W or bands × H × W")
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise DataError(f"{path}: pixels of type {array.dtype}; give integer or floating-point pixels")
        if not np.isfinite(array).all():
            raise DataError(f"{path}: has NaN or infinite pixels; fill or mask them before training")
        expected = shapes[i] if shapes is not None else (arrays[0].shape[0], *array.shape[1:]) if arrays \
            else array.shape
        if array.shape != tuple(expected):
            raise DataError(f"{path}: {describe(array.shape)}, but {what} must be {describe(expected)} like "
                            f"{next(iter(files.values())).name}")
        arrays.append(array)
    kinds = {np.issubdtype(a.dtype, np.integer) for a in arrays}
    if len(kinds) > 1:
        raise DataError(f"{next(iter(files.values())).parent}: mixes integer and floating-point images; "
                        "convert them to one type")
    return arrays


def describe(shape) -> str:
    return f"{shape[0]} band{'s' if shape[0] != 1 else ''} of {shape[1]}×{shape[2]}"


def resolve_units(units: str, dtype) -> str:
    """``units`` (``UNITS``), "auto" decided by the images' ``dtype``: unsigned 16-bit integers are how
    optical satellite products store reflectance × 10 000."""
    if units not in UNITS:
        raise ValueError(f"unknown units {units!r}; choose from {', '.join(UNITS)}")
    if units != "auto":
        return units
    return "reflectance" if np.dtype(dtype) == np.uint16 else "range"


def observed_range(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per band, the minimum and maximum of the training pixels, in their own units."""
    low = np.min([a.min(axis=(0, 2, 3)) for a in images], axis=0).astype(np.float64)
    high = np.max([a.max(axis=(0, 2, 3)) for a in images], axis=0).astype(np.float64)
    return low, high


def band_normalization(low: np.ndarray, high: np.ndarray, integer: bool, units: str = "range"
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per band, ``low`` and ``span`` of x = (v − low)/span, from the training pixels' range (``observed_range``).
    "reflectance": 0 and ``REFLECTANCE_FACTOR``, whatever the pixels, so that another scene of the same sensor
    maps alike. "range": the minimum and max − min (+ 1 for integer pixels, whose dequantization noise fills
    [v, v + 1)), so the training images map into [0, 1]."""
    if units == "reflectance":
        low, span = np.zeros_like(low), np.full_like(low, REFLECTANCE_FACTOR)
    else:
        span = high - low + (1.0 if integer else 0.0)
        span[span <= 0] = 1.0  # a constant band
    return torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(span, dtype=torch.float32)


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 stays uint8 (small); everything else becomes float32 (exact for integers below 2²⁴)."""
    return torch.from_numpy(array) if array.dtype == np.uint8 else torch.from_numpy(array.astype(np.float32))


def load_folder(root, scale: int = 2, crop: int | None = None, test_fraction: float = 0.2,
                split_seed: int = 0, split: str = "auto", augment: bool = False, units: str = "auto") -> ImageData:
    """The paired (or HR-only) images of ``root``, split by ``split`` (``SPLITS``) and mapped to the model's
    units by ``units`` (``UNITS``); raises ``DataError`` naming any bad file. ``augment`` flips and rotates
    the training crops (``ImageData``)."""
    root = Path(root)
    hr_dir, lr_dir = root / "hr", root / "lr"
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if not hr_dir.is_dir():
        raise DataError(f"{root}: no hr/ folder; put the HR images in {hr_dir}/ (and their LR images, "
                        "same names, in lr/)")
    hr_files = image_files(hr_dir)
    if not hr_files:
        raise DataError(f"{hr_dir}: 0 images ({', '.join(SUFFIXES)}); put the HR images there")
    x = read_images(hr_files, None, "every HR image")
    units = resolve_units(units, x[0].dtype)
    if split == "auto":
        split = "rows" if len(x) == 1 or len({a.shape for a in x}) > 1 else "files"
    if len(x) < 2 and (split == "files" or crop is None):
        raise DataError(f"{hr_dir}: 1 image; need at least 2, one of them to test on, or --crop P to test on "
                        "the last rows of a scene")
    if split == "rows" and crop is None:
        raise DataError(f"{hr_dir}: scenes (images of different sizes, or --split rows) are split by rows into "
                        "P×P tiles: give --crop P (for example --crop 32)")
    for path, array in zip(hr_files.values(), x, strict=True):
        h, w = array.shape[1:]
        if h % scale or w % scale:
            where = hr_dir if split == "files" else path
            raise DataError(f"{where}: images of {h}×{w} are not divisible by --scale {scale}; crop them to a "
                            f"multiple of {scale}")
    y = None
    if lr_dir.is_dir():
        lr_files = image_files(lr_dir)
        unmatched = sorted(set(hr_files) ^ set(lr_files))
        if unmatched:
            side = "hr" if unmatched[0] in hr_files else "lr"
            raise DataError(f"{root / side / unmatched[0]}.*: has no partner in {'lr' if side == 'hr' else 'hr'}/; "
                            "hr/ and lr/ must hold the same file names")
        y = read_images({name: lr_files[name] for name in hr_files},
                        [(a.shape[0], a.shape[1] // scale, a.shape[2] // scale) for a in x],
                        f"every LR image (HR size / --scale {scale})")
        if (x[0].dtype.kind in "iu") != (y[0].dtype.kind in "iu"):
            raise DataError(f"{lr_dir}: LR images are {y[0].dtype}, HR images {x[0].dtype}; give both as integers "
                            "or both as floats")
    if split == "files":
        return split_by_files(hr_files, x, y, scale, crop, test_fraction, split_seed, augment, units)
    return split_by_rows(hr_files, x, y, scale, crop, test_fraction, augment, units)


def split_by_files(files: dict, x: list, y: list | None, scale: int, crop: int | None, test_fraction: float,
                   split_seed: int, augment: bool, units: str) -> ImageData:
    """Tiles of one size: whole images to test on, drawn by ``split_seed``; ``crop`` cuts one patch of each."""
    first = x[0].shape
    for path, array in zip(files.values(), x, strict=True):
        if array.shape != first:
            raise DataError(f"{path}: {describe(array.shape)}, but every HR image must be {describe(first)} like "
                            f"{next(iter(files.values())).name} (or use --split rows with --crop for scenes)")
    h, w = first[1:]
    if crop is not None and (crop % scale or crop > min(h, w)):
        raise DataError(f"--crop {crop}: must be a multiple of --scale {scale} and at most the image size "
                        f"{h}×{w}")
    x, y = np.stack(x), None if y is None else np.stack(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    n_test = max(1, round(test_fraction * len(x)))
    test, train = order[:n_test].numpy(), order[n_test:].numpy()
    return image_data(x[train], x[test], None if y is None else y[train], None if y is None else y[test],
                      crop, scale, augment, units)


def test_rows(height: int, crop: int, test_fraction: float) -> int:
    """The rows of a scene held out for testing: the fewest whole P-tiles that make ``test_fraction``
    of its height (at least one)."""
    return max(1, math.ceil(test_fraction * height / crop)) * crop


def chip_starts(length: int, chip: int, crop: int, scale: int) -> list[int]:
    """Starts of chips of ``chip`` pixels along a side of ``length`` such that every window of ``crop``
    pixels starting on the LR grid (a multiple of ``scale``) lies inside one chip: a stride of
    chip − crop (at least one LR pixel), the last chip flush with the end."""
    stride = max(chip - crop, scale)
    starts = list(range(0, length - chip + 1, stride))
    return starts if starts[-1] == length - chip else [*starts, length - chip]


def split_by_rows(files: dict, x: list, y: list | None, scale: int, crop: int,
                  test_fraction: float, augment: bool, units: str) -> ImageData:
    """Scenes of any sizes: per scene, the last ``test_rows`` rows cut into fixed P×P test tiles, and
    the rows above into overlapping chips (P = ``crop``) from which the training crops are drawn."""
    if crop % scale:
        raise DataError(f"--crop {crop}: must be a multiple of --scale {scale}")
    regions = []
    for path, array in zip(files.values(), x, strict=True):
        h, w = array.shape[1:]
        held = test_rows(h, crop, test_fraction)
        if h - held < crop or w < crop:
            raise DataError(f"{path}: {h}×{w} is too small for --crop {crop}: it needs {crop} columns and "
                            f"{held + crop} rows ({held} to test on, {crop} to train on); give a smaller --crop")
        regions.append((h - held, w))
    chip = min(2 * crop, *(min(region) for region in regions))
    chip -= chip % scale
    lr_crop, lr_chip = crop // scale, chip // scale
    parts = {"train": [], "test": [], "train_lr": [], "test_lr": []}
    for i, (array, (top, w)) in enumerate(zip(x, regions, strict=True)):
        lr = None if y is None else y[i]
        for r in chip_starts(top, chip, crop, scale):
            for c in chip_starts(w, chip, crop, scale):
                parts["train"].append(array[:, r:r + chip, c:c + chip])
                if lr is not None:
                    parts["train_lr"].append(lr[:, r // scale:r // scale + lr_chip, c // scale:c // scale + lr_chip])
        for r in range(top, array.shape[1] - crop + 1, crop):
            for c in range(0, w - crop + 1, crop):
                parts["test"].append(array[:, r:r + crop, c:c + crop])
                if lr is not None:
                    parts["test_lr"].append(lr[:, r // scale:r // scale + lr_crop, c // scale:c // scale + lr_crop])
    stacked = {k: np.stack(v) if v else None for k, v in parts.items()}
    return image_data(stacked["train"], stacked["test"], stacked["train_lr"], stacked["test_lr"], crop, scale,
                      augment, units)


def image_data(x_train, x_test, y_train, y_test, crop, scale, augment, units="range") -> ImageData:
    """The split arrays as ``ImageData``, normalized by ``units`` (x and y alike), with the training
    pixels' range per band."""
    integer = x_train.dtype.kind in "iu"
    seen_low, seen_high = observed_range([x_train] + ([] if y_train is None else [y_train]))
    low, span = band_normalization(seen_low, seen_high, integer, units)
    levels = int(span[0]) if integer and bool((span == span[0]).all()) else None
    return ImageData("folder", as_tensor(x_train), torch.full((len(x_train),), -1, dtype=torch.long),
                     as_tensor(x_test), torch.full((len(x_test),), -1, dtype=torch.long), levels,
                     low=low, span=span, integer=integer,
                     train_lr=None if y_train is None else as_tensor(y_train),
                     test_lr=None if y_test is None else as_tensor(y_test), crop=crop, scale=scale, augment=augment,
                     units=units, observed=(seen_low.tolist(), seen_high.tolist()))
