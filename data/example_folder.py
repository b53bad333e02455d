"""Write a tiny paired LR/HR data set in the ``folder`` layout, for the README's worked example:

    python -m data.example_folder examples/scenes

Each scene has 4 bands (like 4 satellite bands) of smooth random structure as 16-bit integers:
hr/NAME.tif is 32×32, lr/NAME.tif the same scene at 16×16 (area average plus sensor noise, so
y is a measurement, not exactly d(x)).
"""

import argparse
from pathlib import Path

import numpy as np


def scene(rng: np.random.Generator, size: int = 32, bands: int = 4, blobs: int = 6) -> np.ndarray:
    """(bands, size, size) reflectance-like values: a few Gaussian blobs per band, shared positions."""
    rows, cols = np.mgrid[0:size, 0:size]
    image = np.full((bands, size, size), 500.0)
    for _ in range(blobs):
        centre, width = rng.uniform(0, size, 2), rng.uniform(2, 6)
        blob = np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * width**2))
        image += rng.uniform(200, 2500, (bands, 1, 1)) * blob
    return image


def write_scenes(root: Path, count: int = 240, size: int = 32, seed: int = 0) -> None:
    import tifffile

    rng = np.random.default_rng(seed)
    for kind in ("hr", "lr"):
        (root / kind).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        hr = scene(rng, size)
        lr = hr.reshape(hr.shape[0], size // 2, 2, size // 2, 2).mean((2, 4)) + rng.normal(0, 20, (4, size // 2,
                                                                                                    size // 2))
        for kind, image in (("hr", hr), ("lr", lr)):
            tifffile.imwrite(root / kind / f"scene{i:03d}.tif", image.clip(0, 65535).round().astype(np.uint16),
                             photometric="minisblack", planarconfig="separate")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where to write hr/ and lr/")
    parser.add_argument("--count", type=int, default=240, help="number of scenes [%(default)s]")
    args = parser.parse_args()
    write_scenes(args.folder, args.count)
    print(f"wrote {args.count} paired 4-band scenes to {args.folder}/hr and {args.folder}/lr")
