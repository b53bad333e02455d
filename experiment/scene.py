"""The scene mode: a trained model applied to an LR image of any size (``superresolve.py``).

The checkpoint (a bundled model's name, ``experiment.bundled``, or a run's file) fixes the model, its tile
size, the band count and its units; the image's values are mapped to those (``experiment.units``) and the
outputs are written in them. Every check is made before anything is written; the outputs appear whole or
not at all.
"""

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from data.errors import DataError
from data.rasters import partial_path
from experiment.bundled import BUNDLED, resolve_checkpoint
from experiment.checks import UsageError, prepare_out, resolve_device
from experiment.cli import DEVICES, OneLineParser, positive, rgb_bands
from experiment.processes import run_mode
from experiment.saved import open_saved, trained_modules
from experiment.units import (
    OUT_OF_RANGE_WARNING,
    Units,
    check_units,
    describe_units,
    input_scaling,
    range_report,
)

MAPS = {"mean": "SR mean", "std": "SR std", "q05": "SR 5 % quantile", "q95": "SR 95 % quantile"}
QUICKLOOK = "quicklook.png"
SUMMARY = "superres.json"
NATURAL_COLOURS = ({"B04": 0, "B03": 1, "B02": 2}, {"RED": 0, "GREEN": 1, "BLUE": 2})
DISPLAY_PIXELS = 900  # the longest side of the quicklook's whole-scene view
DETAIL_PIXELS = 160  # the side of its full-resolution detail
CALIBRATION_TILES = 256  # random tiles of the scene one octave down: about 65 000 pixels per band for 32-pixel tiles
CALIBRATION_SHARE = 0.5  # … but at most half as many as the scene's own tiles (a quarter of its area one octave down)


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="superresolve.py", description=description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path,
                        help="a bundled model's name (" + "; ".join(f"{k}: {v}" for k, v in BUNDLED.items())
                             + "), or a trained run's checkpoint.pt (or its folder): it fixes the model, the scale, "
                               "the band count and the units")
    parser.add_argument("image", type=Path,
                        help="the LR image to super-resolve, any size of at least one tile: a GeoTIFF (.tif), "
                             ".npy (bands × H × W, or H × W), .png, in the units the model was trained on (for "
                             "sentinel2-rgbn the digital numbers of Sentinel-2 L1C, or of L2A with its +1000 "
                             "offset removed: reflectance × 10 000), or mapped there by --scale and --offset")
    parser.add_argument("--scale", type=float, default=None, metavar="A",
                        help="multiply the image's values by A to reach the model's units [the GeoTIFF's stated "
                             "scale, for a reflectance model (0.0001 → reflectance × 10 000); else 1]")
    parser.add_argument("--offset", type=float, default=None, metavar="B",
                        help="then add B: -1000 for Sentinel-2 L2A products of processing baseline 04.00 on "
                             "(January 2022; BOA_ADD_OFFSET = -1000), whose digital numbers carry +1000 [the "
                             "GeoTIFF's stated offset, for a reflectance model; else 0]")
    parser.add_argument("--out", type=Path, default=None,
                        help="the output folder [IMAGE's folder/IMAGE's name-sr]")
    parser.add_argument("--samples", type=positive(int), default=16,
                        help="draws of the latents per tile: the std and the quantiles are those of the mixture of "
                             "the distributions p(x | y, z) they give (Gaussian, Laplace or generalized normal; with a "
                             "discretized likelihood, of the draws of x, at least 2) [%(default)s]")
    parser.add_argument("--keep-samples", type=int, default=0, metavar="N",
                        help="also write N of the draws as whole-scene samples [%(default)s]")
    parser.add_argument("--overlap", type=int, default=None,
                        help="LR pixels shared by neighbouring tiles, blended by a smooth window [a quarter of a "
                             "tile's side]")
    parser.add_argument("--memory-mb", type=positive(int), default=1024,
                        help="memory for one batch of tiles through the networks: it sets the tiles per batch, and "
                             "splits a tile's draws when they do not fit [%(default)s]")
    parser.add_argument("--nodata", type=float, default=None,
                        help="the value of missing pixels, for an input that does not state its own (a GeoTIFF's "
                             "nodata is read from it); NaN is always missing. Each missing input pixel makes its own "
                             "s×s output pixels NaN, with a margin of 0: the networks see the band's mean there, and "
                             "every other pixel is super-resolved from the valid ones")
    parser.add_argument("--rgb-bands", type=rgb_bands, default=None, metavar="R,G,B",
                        help="the bands the quicklook shows as red, green, blue [from the GeoTIFF's band names "
                             "(B04,B03,B02 or red,green,blue); else 2,1,0 for 4+ bands in wavelength order, "
                             "0,1,2 for 3]")
    parser.add_argument("--no-calibration", dest="calibration", action="store_false",
                        help="keep the model's own mean and intervals. By default, for a model that carries its "
                             "octave ratio (the bundled ones; python -m experiment.calibration RUN adds it to a run), "
                             f"the scene is first super-resolved one octave down on {CALIBRATION_TILES} random tiles "
                             "(at most half as many as the scene has) and compared with itself. Per band, the mean's "
                             "detail over bicubic is weighed by the share w in [0, 1] that fits there best (the mean "
                             "falls back toward bicubic where the model draws detail the scene does not support), and "
                             "the std, quantiles and draws are widened or narrowed about that mean so that its 5–95 %% "
                             "interval would hold 90 %% of the truth (docs: evaluation/calibration.py)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="[%(default)s: CUDA when present]")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same outputs [%(default)s]")
    parser.add_argument("--overwrite", action="store_true", help="replace outputs that exist in --out")
    return parser


@dataclass(frozen=True)
class Scene:
    """Everything the work needs, checked: the trained modules and their configuration, the image, where
    the outputs go and how the tiles are cut."""

    args: argparse.Namespace
    saved: object
    modules: tuple
    raster: object
    out: Path
    files: dict
    tile: tuple
    overlap: int
    device: str
    created: bool  # the output folder is new: removed again if nothing is written
    scaling: object  # experiment.units.InputScaling: the file's values to the checkpoint's data units
    values: object  # the image in the checkpoint's data units (C, H, W)
    out_of_range: dict | None  # experiment.units.range_report
    octave_ratio: list | None  # the checkpoint's (experiment.calibration), None without one or --no-calibration


def superresolve(argv=None, description: str = "") -> int:
    args = build_parser(description).parse_args(argv)
    return run_mode(args.device, lambda ranks: prepare(args), lambda ranks, scene: work(scene),
                    prog="superresolve.py")


def prepare(args) -> Scene:
    """Every check, before anything is written (``UsageError``)."""
    from data.rasters import read_raster

    if not 0 <= args.keep_samples <= args.samples:
        raise UsageError(f"--keep-samples {args.keep_samples}: must be between 0 and --samples ({args.samples})")
    device = resolve_device(args.device)
    path = resolve_checkpoint(args.checkpoint)
    if not path.exists() and "/" not in str(args.checkpoint) and args.checkpoint.suffix != ".pt":
        raise UsageError(f"{args.checkpoint}: neither a bundled model ({', '.join(BUNDLED)}) nor a checkpoint file "
                         "or run folder")
    checkpoint, saved = open_saved(path, device, "checkpoint")
    if saved.model != "srvae":
        raise UsageError(f"checkpoint {path}: a {saved.model} model has no p(x | y); train the SRVAE (--model srvae)")
    if saved.likelihood == "discretized" and args.samples < 2:
        raise UsageError(f"--samples {args.samples}: with a discretized likelihood the std and the quantiles "
                         "come from the draws, and need at least 2 per tile")
    try:
        raster = read_raster(args.image, args.nodata)
    except DataError as error:
        raise UsageError(str(error)) from None
    bands, height, width = raster.values.shape
    tile = (saved.image_shape[1] // saved.scale, saved.image_shape[2] // saved.scale)
    if bands != saved.image_shape[0]:
        raise UsageError(f"{args.image}: {bands} band(s), but the model of {path} was trained on "
                         f"{saved.image_shape[0]}: give an image with the same bands, in the same order")
    if height < tile[0] or width < tile[1]:
        raise UsageError(f"{args.image}: {height}×{width} pixels is smaller than one tile of the model "
                         f"({tile[0]}×{tile[1]} LR pixels): give a larger image")
    if not raster.valid.any():
        raise UsageError(f"{args.image}: every pixel is missing (NaN or nodata): nothing to super-resolve")
    scaling = input_scaling(args.scale, args.offset, raster, saved.normalization)
    values = scaling.apply(raster.values)
    check_units(values, raster.valid, saved.normalization, args.image, scaling)
    overlap = min(tile) // 4 if args.overlap is None else args.overlap
    if not 0 <= overlap < min(tile):
        raise UsageError(f"--overlap {overlap}: must be between 0 and {min(tile) - 1} (a tile is {tile[0]}×"
                         f"{tile[1]} LR pixels)")
    if args.rgb_bands is not None and max(args.rgb_bands) >= bands:
        raise UsageError(f"--rgb-bands {','.join(map(str, args.rgb_bands))}: the image has {bands} band(s), "
                         f"counted from 0 to {bands - 1}")
    out = args.out or args.image.parent / f"{args.image.stem}-sr"
    suffix = ".tif" if raster.georeferenced else ".npy"
    files = {name: out / f"{name}{suffix}" for name in MAPS}
    if args.keep_samples:
        files["samples"] = out / f"samples{suffix}"
    files.update(quicklook=out / QUICKLOOK, summary=out / SUMMARY)
    existing = [path.name for path in files.values() if path.exists()]
    if existing and not args.overwrite:
        raise UsageError(f"--out {out}: holds {', '.join(existing)} already; pass --overwrite to replace them, or "
                         "choose another --out")
    model, guide = trained_modules(checkpoint, saved, device, "checkpoint", path)
    created = not out.exists()
    prepare_out(out)
    ratio = checkpoint.get("calibration", {}).get("octave_ratio") if args.calibration else None
    return Scene(args, saved, (model, guide), raster, out, files, tile, overlap, device, created, scaling, values,
                 range_report(values, raster.valid, saved.normalization), ratio)


def natural_colours(args, raster, saved) -> list[int] | None:
    """The quicklook's red, green and blue bands (``--rgb-bands``'s help)."""
    if args.rgb_bands is not None:
        return args.rgb_bands
    names = [(text or "").upper() for text in raster.descriptions]
    for colours in NATURAL_COLOURS:
        if set(colours) <= set(names):
            return [names.index(band) for band in sorted(colours, key=colours.get)]
    if saved.rgb_bands is not None:
        return saved.rgb_bands
    bands = raster.values.shape[0]
    return [2, 1, 0] if bands >= 4 else [0, 1, 2] if bands == 3 else None


def work(scene: Scene) -> int:
    """Super-resolve the scene, write the maps, the quicklook and the summary; returns the exit status."""
    import numpy as np
    import pyro
    import torch

    from evaluation.progress import Stages, clock
    from evaluation.tiles import fill_missing, super_resolve_scene
    from experiment.saved import predictive_draw

    args, saved, raster = scene.args, scene.saved, scene.raster
    model, guide = scene.modules
    pyro.set_rng_seed(args.seed)
    units = Units(saved.normalization, scene.device)
    y = units.to_model(torch.as_tensor(scene.values.astype(np.float32), device=scene.device))
    valid = torch.as_tensor(raster.valid, device=scene.device)
    draw = predictive_draw(model, guide, saved)

    start, stages = time.perf_counter(), Stages()
    work_folder = scene.out / f".partial-{os.getpid()}"
    work_folder.mkdir()
    writers = []
    try:
        filled = fill_missing(y, valid)
        check = scene_check(scene, draw, filled, valid, stages)
        blend = super_resolve_scene(draw, y, valid, saved.scale, scene.tile, scene.overlap, args.samples,
                                    args.keep_samples, saved.channels, args.memory_mb * 2**20, work_folder,
                                    stages("super-resolving", unit="tiles"))
        stages("writing the maps", blend.shape[1], unit="rows")
        writers, views = write_maps(scene, blend, check, units, filled, valid, stages.current)
        stages.close()
        rgb = natural_colours(args, raster, saved)
        write_quicklook(scene.files["quicklook"], views, units, rgb, saved.scale)
        seconds = time.perf_counter() - start
        summary = scene_summary(scene, blend, seconds, rgb, check)
        write_text(scene.files["summary"], json.dumps(summary, indent=1))
        for writer in writers:
            writer.commit()
    except BaseException:
        for writer in writers:
            writer.discard()
        for name in ("quicklook", "summary"):
            partial_path(scene.files[name]).unlink(missing_ok=True)
        shutil.rmtree(work_folder, ignore_errors=True)
        if scene.created and not any(scene.out.iterdir()):
            scene.out.rmdir()
        raise
    shutil.rmtree(work_folder, ignore_errors=True)
    for name in ("quicklook", "summary"):
        os.replace(partial_path(scene.files[name]), scene.files[name])
    print(f"super-resolved {args.image} ({summary['input_shape'][1]}×{summary['input_shape'][2]}, "
          f"{summary['input_shape'][0]} bands) ×{saved.scale} → {summary['output_shape'][1]}×"
          f"{summary['output_shape'][2]} in {clock(seconds)} ({summary['output_megapixels_per_second']:.3g} "
          f"megapixels of output per second, {summary['tiles']} tiles, {args.samples} draws each, on "
          f"{scene.device})")
    if scene.scaling.source != "none":
        print(f"input values mapped to the model's units ({summary['units']}) by {scene.scaling.source}: "
              f"value × {scene.scaling.scale:g} {scene.scaling.offset:+g}")
    if summary["calibration"] is not None:
        factors = ", ".join(f"{name} ×{factor:.2f}"
                            for name, factor in zip(band_names(scene), summary["calibration"]["per_band"], strict=True))
        weights = ", ".join(f"{name} {weight:.2f}" for name, weight in
                            zip(band_names(scene), summary["calibration"]["residual_weight"], strict=True))
        print(f"checked on the scene itself, one octave down: share of the SR detail over bicubic kept {weights}; "
              f"std and 5–95 % widths {factors}")
    elif scene.octave_ratio is not None:
        print("mean and intervals not checked: the scene one octave down has no tile free of missing pixels (the check "
              f"needs {2 * scene.tile[0]}×{2 * scene.tile[1]} valid LR pixels)")
    if summary["missing_input_pixels"]:
        print(f"{summary['missing_input_pixels']} input pixels were missing: their outputs are NaN")
    report = scene.out_of_range
    if report is not None and any(report["warned"]):
        shares = ", ".join(f"{name} {100 * share:.1f} %"
                           for name, share in zip(band_names(scene), report["share_per_band"], strict=True))
        print(f"warning: input pixels outside the range the model was trained on (more than "
              f"{100 * OUT_OF_RANGE_WARNING:g} % in a band: {shares}); the maps there are extrapolations, check "
              "the std map", file=sys.stderr)
    print(f"outputs in {scene.out}/: {' '.join(path.name for path in scene.files.values())}")
    return 0


def scene_check(scene: Scene, draw, y, valid, stages) -> dict | None:
    """The scene's check one octave down (``evaluation.calibration``), from ``y`` with its missing pixels
    filled (``fill_missing``; ``valid`` leaves out the tiles that hold one): the residual weight per band
    that moves the mean toward bicubic, and the factor per band that calibrates the intervals, the
    checkpoint's octave ratio times the stretch measured one octave down about the moved mean; None
    without a ratio, or for a scene with no whole tile one octave down."""
    import numpy as np
    import torch

    from evaluation.calibration import band_stretch, residual_weight, stretches, tile_pixels
    from evaluation.tiles import tile_starts

    s, (th, tw) = scene.saved.scale, scene.tile
    if scene.octave_ratio is None or y.shape[1] < s * th or y.shape[2] < s * tw:
        return None
    own = len(tile_starts(y.shape[1], th, scene.overlap)) * len(tile_starts(y.shape[2], tw, scene.overlap))
    count = min(CALIBRATION_TILES, math.ceil(CALIBRATION_SHARE * own))
    stages("checking the maps one octave down", 1, unit="step")
    with torch.random.fork_rng(devices=[] if y.device.type == "cpu" else [y.device]):  # the maps' draws as without it
        pixels = tile_pixels(draw, y, valid, s, scene.tile, s * scene.overlap, count, scene.args.samples,
                             np.random.default_rng(scene.args.seed), scene.saved.downscale)
    stages.current(1)
    if pixels["truth"].shape[1] == 0:
        return None
    weight = residual_weight(pixels)
    measured = band_stretch(stretches(pixels, weight))
    return {"residual_weight": weight, "per_band": [r * m for r, m in zip(scene.octave_ratio, measured, strict=True)],
            "one_octave_down": measured, "octave_ratio": scene.octave_ratio,
            "pixels_per_band": pixels["truth"].shape[1]}


def band_names(scene: Scene) -> list[str]:
    """The image's band descriptions, or "band i"."""
    bands = scene.raster.values.shape[0]
    return [(text or f"band {i}") for i, text in enumerate(scene.raster.descriptions or [None] * bands)]


def write_text(path: Path, text: str) -> None:
    partial_path(path).write_text(text + "\n")


def write_maps(scene: Scene, blend, check, units: Units, y, valid, progress):
    """The maps in strips of rows, in the data's units, NaN above missing input pixels (``valid``), moved
    toward bicubic and widened by the scene's ``check`` (``scene_check``) when there is one; returns
    the writers (not yet committed) and the quicklook's views (whole scene decimated, and a detail), their
    bicubic panel upsampled from ``y`` (normalized, missing pixels filled)."""
    import numpy as np
    import torch

    from data.downscale import upsample
    from data.rasters import MapWriter
    from evaluation.calibration import toward_bicubic

    s, (bands, height, width), keep = scene.saved.scale, blend.shape, scene.args.keep_samples
    names = band_names(scene)
    writers = {name: MapWriter(scene.files[name], (bands, height, width), scene.raster, s,
                               [f"{label}: {band}" for band in names]) for name, label in MAPS.items()}
    if keep:
        writers["samples"] = MapWriter(scene.files["samples"], (keep, bands, height, width), scene.raster, s,
                                       [f"draw {k}: {band}" for k in range(keep) for band in names])
    step = max(1, math.ceil(max(height, width) / DISPLAY_PIXELS))
    side = min(DETAIL_PIXELS, height, width)
    top, left = (height - side) // 2 // s * s, (width - side) // 2 // s * s
    views = {f"{kind}_{name}": [] for kind in ("scene", "detail") for name in ("bicubic", "mean", "std")}
    rows = max(s, (2**24 // (width * bands * (6 + keep))) // s * s)  # about 64 MiB of float32 per strip
    try:
        lr_valid = valid.cpu().numpy()
        for start in range(0, height, rows):
            stop = min(height, start + rows)
            maps = blend.strip(start, stop, None if check is None else check["per_band"])
            hr_valid = lr_valid[start // s:stop // s].repeat(s, 0).repeat(s, 1)
            lr_top, lr_bottom = max(0, start // s - 2), min(y.shape[1], stop // s + 2)
            bicubic = upsample(y[None, :, lr_top:lr_bottom], s, "bicubic", clamp=False)
            bicubic = bicubic[0, :, start - s * lr_top:stop - s * lr_top]
            bicubic = bicubic.cpu().numpy()
            if check is not None:
                maps = toward_bicubic(maps, bicubic, np.asarray(check["residual_weight"])[:, None, None])
            shown = {name: np.where(hr_valid, image, np.nan)
                     for name, image in (("bicubic", bicubic), ("mean", maps["mean"]), ("std", maps["std"]))}
            first = (-start) % step
            for name, image in shown.items():
                views[f"scene_{name}"].append(image[:, first::step, ::step])
                if stop > top and start < top + side:
                    views[f"detail_{name}"].append(image[:, max(top, start) - start:min(top + side, stop) - start,
                                                         left:left + side])
            for name, writer in writers.items():
                values = units.to_data(maps[name], spread=name == "std")
                writer.write(np.where(hr_valid, values, np.nan).astype(np.float32), start)
            progress(stop)
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    views = {name: torch.as_tensor(np.concatenate(parts, axis=1)) for name, parts in views.items()}
    return list(writers.values()), views


def write_quicklook(path: Path, views: dict, units: Units, rgb, scale: int) -> None:
    """Bicubic, SR mean and SR std of the whole scene (decimated) and of a detail at full resolution."""
    from evaluation.figures import percentile_stretch, scene_quicklook

    low, span = units.low.flatten().cpu(), units.span.flatten().cpu()
    stretch = percentile_stretch(views["scene_mean"].nan_to_num()[None], rgb, low, span)
    panels = []
    for kind, where in (("scene", "whole scene"), ("detail", "detail, full resolution")):
        panels += [(f"bicubic ×{scale}, {where}", views[f"{kind}_bicubic"].nan_to_num()),
                   (f"SR mean, {where}", views[f"{kind}_mean"].nan_to_num()),
                   (f"SR std / band range, {where}", views[f"{kind}_std"].nan_to_num())]
    heat = tuple(label for label, _ in panels if label.startswith("SR std"))
    scene_quicklook(panels, partial_path(path), "super-resolution of the whole scene: SR std is the mean over bands",
                    heat=heat, rgb=rgb, stretch=stretch)


def scene_summary(scene: Scene, blend, seconds: float, rgb, check) -> dict:
    """What was done, for ``superres.json``."""
    bands, height, width = blend.shape
    return {"checkpoint": str(scene.args.checkpoint), "image": str(scene.args.image),
            "input_shape": list(scene.raster.values.shape), "output_shape": [bands, height, width],
            "scale": scene.saved.scale, "tile_lr": list(scene.tile), "overlap_lr": scene.overlap,
            "tiles": blend.tiles, "samples_per_tile": scene.args.samples, "kept_samples": scene.args.keep_samples,
            "missing_input_pixels": int((~scene.raster.valid).sum()), "georeferenced": scene.raster.georeferenced,
            "rgb_bands": rgb, "seed": scene.args.seed, "device": scene.device, "seconds": seconds,
            "units": describe_units(scene.saved.normalization),
            "input_scaling": {"scale": scene.scaling.scale, "offset": scene.scaling.offset,
                              "from": scene.scaling.source},
            "out_of_range": scene.out_of_range, "calibration": check,
            "output_megapixels_per_second": height * width / 1e6 / seconds,
            "files": {name: path.name for name, path in scene.files.items()}}

