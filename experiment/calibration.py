"""``python -m experiment.calibration RUN``: measure a trained model's octave ratio and store it in its
checkpoint, so that ``superresolve.py`` can check each scene's intervals one octave down
(``evaluation.calibration``).

On the held-out rows of every scene the run was trained on (its ``--data-dir``, or ``--data-dir``), the
interval's stretch that holds 90 % of the pixels is measured at the model's own level (y = d(x) → x) and
one octave down (d(y) → y); the ratio of the two, per band, is what a scene's factor one octave down is
multiplied by. Written into the checkpoint (a run's, or a bundled model's file) as ``calibration``.
"""

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from experiment.checks import UsageError

TILES = 128  # random tiles per scene and level: about 33 000 pixels per band for 32-pixel tiles


def held_out_rows(image: np.ndarray, crop: int, test_fraction: float = 0.2) -> np.ndarray:
    """The rows of a scene that its run held out (``data.folder.test_rows``)."""
    from data.folder import test_rows

    return image[:, -test_rows(image.shape[1], crop, test_fraction):]


def octave_ratio(draw, images: list, units, scale: int, tile: tuple[int, int], ring: int, samples: int,
                 mode: str, seed: int = 0) -> dict:
    """The stretches at the model's level and one octave down, pooled over ``images`` (data units, each
    (C, H, W)), and their ratio per band. Each image's mean is moved toward bicubic at both levels by the
    residual weight found one octave down, as ``superresolve.py`` moves a scene's. Images too small for one
    tile one octave down are skipped."""
    import torch

    from data.downscale import downscale
    from evaluation.calibration import band_stretch, residual_weight, stretches, tile_pixels

    generator = np.random.default_rng(seed)
    fine, coarse, weights = [], [], []
    for image in images:
        x = units.to_model(torch.as_tensor(image.astype(np.float32)))
        if min(x.shape[1] // scale**2 - tile[0], x.shape[2] // scale**2 - tile[1]) < 0:
            continue
        at_level = tile_pixels(draw, x, None, scale, tile, ring, TILES, samples, generator, mode)
        one_down = tile_pixels(draw, downscale(x, scale, mode), None, scale, tile, ring, TILES, samples, generator,
                               mode)
        weight = residual_weight(one_down)  # what a scene y = d(x) would find, and move its maps by
        fine.append(stretches(at_level, weight))
        coarse.append(stretches(one_down, weight))
        weights.append(weight)
    if not weights:
        raise UsageError(f"no held-out rows are {scale**2 * tile[0]} pixels tall, as one tile one octave down needs")
    fine_stretch, coarse_stretch = band_stretch(torch.cat(fine, 1)), band_stretch(torch.cat(coarse, 1))
    return {"octave_ratio": [f / c for f, c in zip(fine_stretch, coarse_stretch, strict=True)],
            "stretch": fine_stretch, "stretch_one_octave_down": coarse_stretch, "scenes": len(weights),
            "residual_weight_per_scene": weights,
            "tiles_per_scene": TILES, "samples": samples}


def calibrate(path: Path, data_dir: Path | None, samples: int = 4) -> dict:
    """Measure the checkpoint's ``octave_ratio`` on its data's held-out rows and write it into the file."""
    import pyro
    import torch

    from data.folder import image_files, read_image
    from experiment.saved import open_saved, predictive_draw, trained_modules
    from experiment.units import Units
    from training.checkpoint import write_atomically

    checkpoint, saved = open_saved(path, "cpu", "RUN")
    if saved.dataset != "folder" or saved.crop is None:
        raise UsageError(f"{path}: the octave ratio is measured on scenes: a run of --dataset folder with --crop")
    folder = Path(data_dir or saved.data_dir) / "hr"
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder; give the scenes the run was trained on with --data-dir")
    model, guide = trained_modules(checkpoint, saved, "cpu", "RUN", path)
    pyro.set_rng_seed(0)
    tile = (saved.image_shape[1] // saved.scale, saved.image_shape[2] // saved.scale)
    images = [held_out_rows(read_image(file), saved.crop) for file in image_files(folder).values()]
    measured = octave_ratio(predictive_draw(model, guide, saved), images, Units(saved.normalization, "cpu"),
                            saved.scale, tile, saved.scale * (min(tile) // 4), samples, saved.downscale)
    buffer = io.BytesIO()
    torch.save({**checkpoint, "calibration": measured}, buffer)
    write_atomically(path, buffer.getvalue())
    return measured


def main(argv=None) -> int:
    from experiment.bundled import resolve_checkpoint

    parser = argparse.ArgumentParser(prog="python -m experiment.calibration", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run's folder or checkpoint.pt, or a bundled model's name")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the folder (with hr/) the model was trained on [the run's --data-dir]")
    args = parser.parse_args(argv)
    try:
        measured = calibrate(resolve_checkpoint(args.run), args.data_dir)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("octave ratio per band:", " ".join(f"{value:.3f}" for value in measured["octave_ratio"]),
          f"(stretch {' '.join(f'{v:.3f}' for v in measured['stretch'])} at the model's level, "
          f"{' '.join(f'{v:.3f}' for v in measured['stretch_one_octave_down'])} one octave down, "
          f"{measured['scenes']} scenes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
