"""Whole-scene super-resolution (not a test), its speed and, with a checkpoint, its quality:

    python -m bench.scene [--device cuda] [--side 64] [--checkpoint runs/malmo/checkpoint.pt]

Megapixels of output per second of ``evaluation.tiles.super_resolve_scene`` for 1, 10 and 100 draws per
tile, beside the residual CNN baseline's single pass over the whole scene, side by side in one process
and interleaved, each the median of ``--repeats`` timed runs after a warm-up. The models are the
README's Malmö configuration (conv, 4 bands, 32×32 HR tiles, per-pixel scales from their own
network) with untrained weights: the speed does not depend on them.

With ``--checkpoint`` (a model trained on ``data/sentinel2`` by the README's command) it also runs
``superresolve.py`` on the scene's held-out rows (the test region of ``--crop``'s split), downscaled
(Wald's protocol, y = d(x)), for each of ``--draws``, and measures the tiled output against the true
rows: PSNR of the SR mean and of bicubic over all pixels (each band's range 1), the coverage of the
central 90 % interval [q05, q95], and the Spearman correlation of the std with the error. Writes its
tables into ``bench/results.json`` under "scene".
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyro
import torch

from baselines.cnn import ResidualCNN
from bench.record import read, record
from data import downscale, upsample
from data.folder import read_image, test_rows
from evaluation import quality
from evaluation.superres import predictive_components
from evaluation.tiles import super_resolve_scene
from evaluation.uncertainty import spearman
from experiment.config import RunConfig
from experiment.scene import superresolve
from training.build import build_model_and_guide

ROOT = Path(__file__).resolve().parent.parent
MALMO = {"model": "srvae", "guide": "amortized", "prior": "normal", "arch": "conv", "noise": "pixel",
         "scale_network": True, "dataset": "folder", "crop": 32, "image_shape": [4, 32, 32]}
DRAWS = (1, 10, 100)
MAP_NAMES = ("mean", "std", "q05", "q95")


def timed(function, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--side", type=int, default=64, help="the LR scene's side, pixels [%(default)s]")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each method [%(default)s]")
    parser.add_argument("--memory-mb", type=int, default=1024, help="superresolve.py's budget [%(default)s]")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a Malmö model, to measure the quality too")
    parser.add_argument("--draws", type=int, nargs="+", default=[16, 100], help="draws per tile measured [%(default)s]")
    parser.add_argument("--crop", type=int, default=32, help="the checkpoint's --crop, for its test rows [%(default)s]")
    parser.add_argument("--speed", action=argparse.BooleanOptionalAction, default=True, help="measure the speed")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json", help="[%(default)s]")
    args = parser.parse_args(argv)
    scene = {}
    if args.speed:
        scene.update(speed(args))
    if args.checkpoint is not None:
        scene["held_out"] = held_out(args)
    record(args.out, "scene", {**read(args.out).get("scene", {}), **scene})
    return 0


def speed(args) -> dict:
    """Megapixels of output per second: the SRVAE for each of ``DRAWS``, the CNN in one pass."""
    device = args.device
    pyro.set_rng_seed(0)
    config = RunConfig(**MALMO)
    model, guide = build_model_and_guide(config, config.image_shape, device)
    cnn = ResidualCNN(4, config.scale, config.channels, config.blocks).to(device)
    y = torch.rand(4, args.side, args.side, device=device)
    valid = torch.ones(args.side, args.side, dtype=torch.bool, device=device)
    tile = (config.image_shape[1] // config.scale, config.image_shape[2] // config.scale)
    megapixels = (config.scale * args.side) ** 2 / 1e6

    def srvae(draws):
        def run():
            with tempfile.TemporaryDirectory() as folder:
                super_resolve_scene(lambda tiles, k: predictive_components(model, guide, tiles, k), y, valid,
                                    config.scale, tile, min(tile) // 4, draws, 0, config.channels,
                                    args.memory_mb * 2**20, Path(folder))
        return run

    def cnn_pass():
        with torch.no_grad():
            cnn(y[None])

    methods = {f"SRVAE, {n} draw{'s' if n > 1 else ''} per tile": srvae(n) for n in DRAWS}
    methods["CNN, one pass"] = cnn_pass
    for method in methods.values():  # warm-up
        timed(method, device)
    seconds = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, method in methods.items():
            seconds[name].append(timed(method, device))
    table = {name: megapixels / statistics.median(times) for name, times in seconds.items()}
    print(f"whole-scene super-resolution, {args.side}×{args.side} LR → {config.scale * args.side}² HR, {device}:")
    for name, rate in table.items():
        print(f"  {name:<30} {rate:9.4f} megapixels of output per second")
    return {"device": device, "lr_side": args.side, "repeats": args.repeats, "megapixels_per_second": table,
            "cnn_over_srvae_100_draws": table["CNN, one pass"] / table["SRVAE, 100 draws per tile"]}


def held_out(args) -> dict:
    """``superresolve.py`` on d(x) of the Malmö scene's held-out rows, against x (``--checkpoint``)."""
    x = read_image(ROOT / "data" / "sentinel2" / "hr" / "malmo_10m.npy").astype(np.float32)
    x = torch.as_tensor(x[:, -test_rows(x.shape[1], args.crop, 0.2):])
    span = x.flatten(1).amax(1) - x.flatten(1).amin(1)
    y = downscale(x[None], 2, "area")[0]
    table = {}
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "rows.npy", y.numpy())
        for draws in args.draws:
            out = Path(folder) / f"out-{draws}"
            superresolve([str(args.checkpoint), str(Path(folder) / "rows.npy"), "--samples", str(draws), "--out",
                          str(out), "--device", args.device])
            mean, std, q05, q95 = (torch.as_tensor(np.load(out / f"{name}.npy")) for name in MAP_NAMES)
            error = (mean - x).abs()
            table[f"{draws} draws"] = {
                "seconds": json.loads((out / "superres.json").read_text())["seconds"],
                "sr_psnr": psnr(mean, x, span), "coverage_90": ((q05 <= x) & (x <= q95)).float().mean().item(),
                "std_error_spearman": spearman(std / span[:, None, None], error / span[:, None, None])}
    low, high = x.flatten(1).amin(1)[:, None, None], x.flatten(1).amax(1)[:, None, None]
    bicubic = upsample((y - low) / (high - low), 2, "bicubic") * (high - low) + low
    table["bicubic_psnr"] = psnr(bicubic, x, span)
    print(f"held-out rows of the Malmö scene, {tuple(x.shape)}, through superresolve.py:")
    for name, row in table.items():
        print(f"  {name}: {row}")
    return table


def psnr(images: torch.Tensor, x: torch.Tensor, span: torch.Tensor) -> float:
    """The PSNR of a whole scene (C, H, W), each band's error in units of its range."""
    return quality.psnr((images / span[:, None, None])[None], (x / span[:, None, None])[None]).item()


if __name__ == "__main__":
    raise SystemExit(main())
