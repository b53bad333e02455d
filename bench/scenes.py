"""Leave one place out: does a model trained on some places super-resolve a place it never saw? (not a test)

    python -m bench.scenes [--data-dir data/sentinel2/places] [--places malmo chesapeake …] [--steps 4000]
                           [--only-train] [--seed 0]

A place is every file of ``DIR/hr/`` whose name is the same but for a trailing ``_YYYYMMDD`` (the four
Lake Constance dates are one place, left out together). For each place in turn it

1. links the other places' files into ``--runs/without-PLACE/data/hr/``;
2. trains the SRVAE there with the README's command at every default but the budget,
   ``python run.py --dataset folder --data-dir … --crop 32 --epochs E`` (E epochs make about ``--steps``
   Adam steps; with ``--train-only``, as the benchmark scores the model itself), measures its octave ratio
   on those places' held-out rows (``experiment.calibration``), and trains ``baselines.cnn`` on the same
   crops, in the same units, for the same steps;
3. applies both to every file of the left-out place, whole, by Wald's protocol: x the 10 m scene, y = d(x)
   its 2×2 area average, y super-resolved by ``superresolve.py`` (the SRVAE's mean, std and 5/95 % maps) and by
   the CNN in one pass (it is fully convolutional), and upsampled bicubically;
4. scores each against x: PSNR (peak: the model's unit, reflectance 1 = 10 000), RMSE in the data's units, per
   band; the share of x inside the 5–95 % maps, the SR mean moved toward bicubic and the maps calibrated by the
   scene's check one octave down (and the model's own mean and maps before it, as ``uncalibrated``);
   Spearman's correlation of the std map with the SR mean's absolute error; the CRPS of the kept draws.

The figures go to ``bench/results.json`` under ``--key`` ("scenes"), per place and per band, with the machine
that made them (both models train, and the SRVAE super-resolves, on CUDA when there is one). A fold
already trained (its checkpoint through every epoch, its ``cnn.pt``) is read, not trained again, and one
stopped midway is resumed from its checkpoint; ``--only-train`` stops after training, so folds can be
trained apart (two machines, two sessions) and scored together. ``--table`` trains and scores nothing: it
prints the places stored under ``--key`` as the README's Markdown table.
"""

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import torch

from bench.__main__ import environment
from bench.record import read, record
from bench.satellite import ROOT, run

DATE = re.compile(r"_\d{8}$")
MARGIN = 8  # HR pixels at each border left out of the scores: the scene's edge, where no method sees context
INNER = (slice(None), slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))


def places(folder: Path) -> dict[str, list[Path]]:
    """{place: its files} of ``folder``/hr, a place being a file's name without a trailing ``_YYYYMMDD``."""
    from data.folder import image_files

    grouped: dict[str, list[Path]] = {}
    for name, path in image_files(folder / "hr").items():
        grouped.setdefault(DATE.sub("", name), []).append(path)
    return grouped


def fold_data(folder: Path, left_out: str, out: Path) -> Path:
    """``out``/data with hr/ holding links to every file of ``folder`` but the place ``left_out``'s."""
    hr = out / "data" / "hr"
    hr.mkdir(parents=True, exist_ok=True)
    for place, paths in places(folder).items():
        for path in paths:
            link = hr / path.name
            if place != left_out and not link.exists():
                link.symlink_to(path.resolve())
    return out / "data"


def epochs_for(data_dir: Path, crop: int, steps: int, batch_size: int = 64) -> tuple[int, int]:
    """(epochs, their Adam steps): the fewest whole epochs of ``data_dir``'s training crops that make ``steps``."""
    from data import load_dataset

    data = load_dataset("folder", data_dir, crop=crop)
    per_epoch = math.ceil(len(data.train_values) / batch_size)
    epochs = math.ceil(steps / per_epoch)
    return epochs, epochs * per_epoch


def train_fold(fold: Path, data_dir: Path, args) -> int:
    """Train the SRVAE and the CNN of one fold unless done; returns their steps."""
    epochs, steps = epochs_for(data_dir, args.crop, args.steps)
    srvae = fold / "srvae"
    if (srvae / "checkpoint.pt").exists() and not trained(srvae, epochs):
        run(["run.py", "--resume", str(srvae), "--train-only"])  # a fold stopped midway continues where it was
    elif not trained(srvae, epochs):
        run(["run.py", "--dataset", "folder", "--data-dir", str(data_dir), "--crop", str(args.crop), "--epochs",
             str(epochs), "--seed", str(args.seed), "--train-only", "--out", str(srvae)])
    if not calibrated(srvae / "checkpoint.pt"):
        run(["-m", "experiment.calibration", str(srvae), "--data-dir", str(data_dir)])
    if not (fold / "cnn.pt").exists():
        run(["-m", "baselines.cnn", "--data-dir", str(data_dir), "--crop", str(args.crop), "--steps", str(steps),
             "--seed", str(args.seed), "--out", str(fold / "cnn.json"), "--save", str(fold / "cnn.pt")])
    return steps


def trained(srvae: Path, epochs: int) -> bool:
    """Whether the fold's SRVAE has run its epochs: its checkpoint holds the final weights (run.py's own
    evaluation of the test tiles, which this benchmark does not use, is skipped: ``--train-only``)."""
    history = srvae / "history.csv"
    return (srvae / "metrics.json").exists() or (history.exists() and len(history.read_text().splitlines()) > epochs)


def calibrated(checkpoint: Path) -> bool:
    """Whether the checkpoint carries its octave ratio (``experiment.calibration``)."""
    return "calibration" in torch.load(checkpoint, map_location="cpu", weights_only=True)


def wald_pair(path: Path, scale: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """x: the scene cut to a multiple of ``scale``, in its own units (float64); y = d(x), its area average."""
    from data.folder import read_image

    x = read_image(path).astype(np.float64)
    h, w = x.shape[1] // scale * scale, x.shape[2] // scale * scale
    x = x[:, :h, :w]
    y = x.reshape(x.shape[0], h // scale, scale, w // scale, scale).mean((2, 4))
    return x, y


def cnn_and_bicubic(cnn_file: Path, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CNN's x̂(y) and bicubic(y), in the data's units, from the CNN saved with its units."""
    from baselines.cnn import load_cnn
    from data import upsample
    from experiment.units import Units

    net, normalization, scale = load_cnn(cnn_file)
    units = Units(normalization, "cpu")
    y_model = units.to_model(torch.as_tensor(y, dtype=torch.float32))[None]
    with torch.no_grad():
        cnn = net(y_model)[0]
        bicubic = upsample(y_model, scale, "bicubic", clamp=False)[0]
    return tuple(units.to_data(image.double().numpy()) for image in (cnn, bicubic))


def scores(x: np.ndarray, mean: np.ndarray, peak: float) -> dict:
    """Per band and over bands: PSNR against ``peak`` and RMSE in the data's units, inside ``MARGIN``."""
    error = (mean - x)[INNER]
    mse = (error**2).reshape(x.shape[0], -1).mean(1)
    return {"psnr": float(10 * np.log10(peak**2 / mse.mean())),
            "psnr_per_band": (10 * np.log10(peak**2 / mse)).tolist(), "rmse_per_band": np.sqrt(mse).tolist()}


def coverage(x: np.ndarray, maps: dict) -> dict:
    """The share of x inside the 5–95 % maps, over bands and per band, inside ``MARGIN``."""
    x_in = x[INNER]
    held = (maps["q05"][INNER] <= x_in) & (x_in <= maps["q95"][INNER])
    return {"coverage_90": float(held.mean()), "coverage_90_per_band": held.reshape(x.shape[0], -1).mean(1).tolist()}


def uncertainty_scores(x: np.ndarray, maps: dict) -> dict:
    """Coverage of the 5–95 % maps, Spearman of std against |error| and the CRPS of the kept draws."""
    from evaluation.uncertainty import crps, spearman

    x_in = x[INNER]
    error = np.abs(maps["mean"][INNER] - x_in)
    std = maps["std"][INNER]
    every = max(1, error.size // 2_000_000)  # Spearman on at most two million pixels
    draws = torch.as_tensor(maps["samples"][(slice(None), *INNER)])
    return {**coverage(x, maps),
            "spearman": spearman(torch.as_tensor(std.ravel()[::every]), torch.as_tensor(error.ravel()[::every])),
            "crps_per_band": crps(draws, torch.as_tensor(x_in)).reshape(x.shape[0], -1).mean(1).tolist(),
            "crps_draws": int(draws.shape[0])}


def own_maps_scores(x: np.ndarray, maps: dict, bicubic: np.ndarray, check: dict, peak: float) -> dict:
    """The PSNR and coverage of the model's own maps, before the scene's check moved the mean toward bicubic
    by w and widened the intervals by t (``superresolve.py``): m = b + (m' − b)/w, q = m + (q' − m')/t.
    Empty where a band's w is 0 (its own mean is then lost)."""
    weight = np.asarray(check["residual_weight"])[:, None, None]
    factor = np.asarray(check["per_band"])[:, None, None]
    if not weight.all():
        return {}
    own = {"mean": bicubic + (maps["mean"] - bicubic) / weight}
    own.update({name: own["mean"] + (maps[name] - maps["mean"]) / factor for name in ("q05", "q95")})
    return {**scores(x, own["mean"], peak), **coverage(x, own)}


def score_scene(path: Path, fold: Path, samples: int) -> dict:
    """The left-out scene ``path`` through the fold's SRVAE (``superresolve.py``), its CNN and bicubic."""
    x, y = wald_pair(path)
    lr = fold / f"{path.stem}-lr.npy"
    np.save(lr, y.astype(np.float32))
    out = fold / f"{path.stem}-sr"
    if not (out / "superres.json").exists():
        run(["superresolve.py", str(fold / "srvae" / "checkpoint.pt"), str(lr), "--out", str(out), "--samples",
             str(samples), "--keep-samples", str(samples), "--overwrite"])
    maps = {name: np.load(out / f"{name}.npy").astype(np.float64) for name in ("mean", "std", "q05", "q95", "samples")}
    summary = json.loads((out / "superres.json").read_text())
    config = json.loads((fold / "srvae" / "config.json").read_text())
    peak = float(np.mean(config["normalization"]["span"]))
    cnn, bicubic = cnn_and_bicubic(fold / "cnn.pt", y)
    model = {**scores(x, maps["mean"], peak), **uncertainty_scores(x, maps)}
    if summary.get("calibration"):
        model["calibration"] = check = summary["calibration"]
        model["uncalibrated"] = own_maps_scores(x, maps, bicubic, check, peak)
    return {"scene": path.stem, "shape": list(x.shape), "srvae": model,
            "cnn": scores(x, cnn, peak), "bicubic": scores(x, bicubic, peak),
            "out_of_range": summary.get("out_of_range"), "seconds": summary["seconds"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "sentinel2" / "places",
                        help="a folder whose hr/ holds the places' scenes [%(default)s]")
    parser.add_argument("--places", nargs="+", default=None, help="the places to leave out in turn [all]")
    parser.add_argument("--steps", type=int, default=4000, help="Adam steps of each model [%(default)s]")
    parser.add_argument("--crop", type=int, default=32, help="run.py's --crop [%(default)s]")
    parser.add_argument("--samples", type=int, default=4,
                        help="superresolve.py's --samples: the maps of the mixture of 4 draws' components matched 16 "
                             "and 100 to the third digit on Malmö, at a quarter of the time [%(default)s]")
    parser.add_argument("--seed", type=int, default=0, help="[%(default)s]")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "scenes", help="the folds' folder [%(default)s]")
    parser.add_argument("--only-train", action="store_true", help="train the folds, score nothing")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json", help="[%(default)s]")
    parser.add_argument("--key", default="scenes",
                        help="the entry of --results the places are merged into [%(default)s]")
    parser.add_argument("--table", action="store_true",
                        help="print the places stored under --key as a Markdown table, and do nothing else")
    args = parser.parse_args(argv)
    if args.table:
        stored = read(args.results).get(args.key)
        if not stored:
            parser.error(f"--table: {args.results} has no places under --key {args.key}")
        print("\n".join(markdown_table(stored)))
        return 0
    grouped = places(args.data_dir)
    chosen = args.places or sorted(grouped)
    unknown = sorted(set(chosen) - set(grouped))
    if unknown:
        parser.error(f"--places {' '.join(unknown)}: not in {args.data_dir / 'hr'}; choose from {', '.join(grouped)}")
    table = {}
    for place in chosen:
        fold = args.runs / f"without-{place}"
        data_dir = fold_data(args.data_dir, place, fold)
        steps = train_fold(fold, data_dir, args)
        if args.only_train:
            continue
        table[place] = {"steps": steps, "trained_on": sorted(p for p in grouped if p != place),
                        "scenes": [score_scene(path, fold, args.samples) for path in grouped[place]],
                        "machine": environment("cuda" if torch.cuda.is_available() else "cpu")}
        print(json.dumps({place: summary_row(table[place])}, indent=1))
    if table:
        record(args.results, args.key, {**read(args.results).get(args.key, {}), **table})
    return 0


def summary_row(place: dict) -> dict:
    """The place's scenes averaged: PSNR of each method, SR − bicubic, SR − CNN, coverage, Spearman."""
    scenes = place["scenes"]

    def mean(values):
        return float(np.mean(list(values)))

    sr = mean(s["srvae"]["psnr"] for s in scenes)
    bicubic = mean(s["bicubic"]["psnr"] for s in scenes)
    cnn = mean(s["cnn"]["psnr"] for s in scenes)
    worst_band = min(min(np.subtract(s["srvae"]["psnr_per_band"], s["bicubic"]["psnr_per_band"])) for s in scenes)
    own = [s["srvae"].get("uncalibrated", s["srvae"]) for s in scenes]
    return {"sr_psnr": sr, "bicubic_psnr": bicubic, "cnn_psnr": cnn, "sr_minus_bicubic": sr - bicubic,
            "sr_minus_cnn": sr - cnn, "worst_band_sr_minus_bicubic": float(worst_band),
            "coverage_90": mean(s["srvae"]["coverage_90"] for s in scenes),
            "coverage_90_uncalibrated": mean(o.get("coverage_90", math.nan) for o in own),
            "sr_psnr_unchecked": mean(o.get("psnr", math.nan) for o in own),
            "spearman": mean(s["srvae"]["spearman"] for s in scenes)}


def markdown_table(stored: dict) -> list[str]:
    """The README's leave-one-place-out table: a row per place of ``summary_row``, in dB but for the maps' share
    and Spearman's correlation; the model's own figures (before the scene's check) in parentheses."""
    rows = ["| left out | SR mean (model's own) | CNN | bicubic | SR − bicubic | worst band SR − bicubic (any date) "
            "| SR − CNN | 5–95 % maps hold (model's own) | Spearman(std, error) |", "|---" * 9 + "|"]
    for place in sorted(stored):
        scenes, row = stored[place]["scenes"], summary_row(stored[place])
        shape = " × ".join(str(n) for n in scenes[0]["shape"][1:])
        name = f"{place} ({len(scenes)} scenes, {shape})" if len(scenes) > 1 else f"{place} ({shape})"
        rows.append(f"| {name} | {row['sr_psnr']:.2f} dB ({row['sr_psnr_unchecked']:.2f}) | {row['cnn_psnr']:.2f} "
                    f"| {row['bicubic_psnr']:.2f} | {row['sr_minus_bicubic']:+.2f} "
                    f"| {row['worst_band_sr_minus_bicubic']:+.2f} | {row['sr_minus_cnn']:+.2f} "
                    f"| {row['coverage_90']:.3f} ({row['coverage_90_uncalibrated']:.3f}) | {row['spearman']:.2f} |")
    return rows


if __name__ == "__main__":
    sys.exit(main())
