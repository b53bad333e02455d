"""The SRVAE against bicubic upsampling and a deterministic residual CNN on a real scene (not a test):

    python -m bench.satellite [--seeds 0 1 2] [--epochs N] [--data-dir data/sentinel2] [--crop 32 | 0]
                              [--run-args "--likelihood laplace" --key satellite_laplace]

For each seed it runs the README's command, ``python run.py --dataset folder --data-dir DIR --crop P``
(every other flag at its default; ``--epochs`` only to measure a shorter budget, ``--run-args`` to
measure a variant under its own ``--key``), then trains ``baselines.cnn`` on the same crops for the
same number of Adam steps, and evaluates both on the same held-out test tiles. It prints the mean
and spread over seeds of PSNR, SSIM, MAE or CRPS, coverage, the std–error correlation and AUSE,
per band too, and the training's stability (``stability``), and writes them to
``bench/results.json`` under "satellite" (or ``--key``). A run already finished in ``--out`` (its
``metrics.json``, or the CNN's JSON file) is read, not run again, and so is a seed already in the results
file under the same key and command whose run is not in ``--out``: seeds trained apart, on two machines
or in two sessions, are gathered into one table.
"""

import argparse
import csv
import json
import math
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from bench.record import read, record

ROOT = Path(__file__).resolve().parent.parent
SRVAE_KEYS = ("sr_psnr", "sr_ssim", "sr_mae", "sr_crps", "bicubic_psnr", "bicubic_ssim", "bicubic_mae", "coverage_50",
              "coverage_90", "coverage_95", "std_error_spearman", "ause", "ause_random", "gamma_x",
              "explicit_neg_elbo")
CNN_KEYS = ("cnn_psnr", "cnn_ssim", "cnn_mae")
STABILITY_KEYS = ("worst_setback", "skipped_steps", "clipped_steps")


def run(command: list[str]) -> None:
    """Run a command from the project's root, its output passed through."""
    subprocess.run([sys.executable, *command], cwd=ROOT, check=True)


def stability(history: Path) -> dict:
    """From a run's ``history.csv``: the largest rise of an epoch's test −ELBO above the best of the
    epochs before it, once the first tenth of the epochs is over (nats/image; a late setback or
    breakdown shows here, while the first epochs' large swings, before the model has settled, do
    not), and the steps skipped and clipped over the whole run."""
    rows = list(csv.DictReader(history.read_text().splitlines()))
    settled = len(rows) // 10
    best, worst = math.inf, 0.0
    for index, row in enumerate(rows):
        if row["test_loss"]:
            loss = float(row["test_loss"])
            if index >= settled:
                worst = max(worst, loss - best)
            best = min(best, loss)
    return {"worst_setback": worst, "skipped_steps": sum(int(row["skipped_steps"]) for row in rows),
            "clipped_steps": sum(int(row.get("clipped_steps") or 0) for row in rows)}


def crop_flag(crop: int) -> list[str]:
    """run.py's ``--crop P`` for crops of a scene; nothing for 0, a folder of equal-size tiles."""
    return ["--crop", str(crop)] if crop else []


def one_seed(seed: int, args, out: Path) -> dict:
    """Both models for one seed: the SRVAE's metrics, the CNN's, and the steps and seconds of each."""
    run_dir = out / f"srvae-seed{seed}"
    extra = (["--epochs", str(args.epochs)] if args.epochs else []) + shlex.split(args.run_args)
    if not (run_dir / "metrics.json").exists():
        run(["run.py", "--dataset", "folder", "--data-dir", str(args.data_dir), *crop_flag(args.crop),
             "--seed", str(seed), "--out", str(run_dir), *extra])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    steps = config["epochs"] * math.ceil(config["train_images"] / config["batch_size"])
    cnn_file = out / f"cnn-seed{seed}.json"
    if not cnn_file.exists():
        run(["-m", "baselines.cnn", "--data-dir", str(args.data_dir), *crop_flag(args.crop),
             "--steps", str(steps), "--seed", str(seed), "--out", str(cnn_file)])
    cnn = json.loads(cnn_file.read_text())
    if cnn["steps"] != steps:
        raise SystemExit(f"bench.satellite: {cnn_file} trained {cnn['steps']} steps, the SRVAE {steps}: remove it")
    return {"seed": seed, "steps": steps, "epochs": config["epochs"], "srvae_seconds": metrics["train_seconds"],
            "cnn_seconds": cnn.get("seconds"), **{k: metrics[k] for k in SRVAE_KEYS}, **{k: cnn[k] for k in CNN_KEYS},
            **stability(run_dir / "history.csv"),
            "srvae_psnr_per_band": metrics["per_band"]["sr_psnr"],
            "srvae_rmse_units_per_band": metrics["per_band"]["sr_rmse_units"],
            "srvae_crps_units_per_band": metrics["per_band"]["sr_crps_units"],
            "cnn_psnr_per_band": cnn["cnn_psnr_per_band"], "cnn_rmse_units_per_band": cnn["cnn_rmse_units_per_band"],
            "bicubic_psnr_per_band": cnn["bicubic_psnr_per_band"],
            "bicubic_rmse_units_per_band": cnn["bicubic_rmse_units_per_band"]}


def spread(values) -> str:
    """'mean ± sd (min–max)' of the seeds' values."""
    values = list(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4g} ± {sd:.2g} ({min(values):.4g}–{max(values):.4g})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="[%(default)s]")
    parser.add_argument("--epochs", type=int, default=None, help="the SRVAE's epochs [run.py's default]")
    parser.add_argument("--data-dir", type=Path, default=Path("data/sentinel2"), help="[%(default)s]")
    parser.add_argument("--crop", type=int, default=32, help="the training crop P; 0 for a folder of equal-size "
                        "tiles, trained whole and split by file [%(default)s]")
    parser.add_argument("--run-args", default="", help="more flags for run.py, quoted as one string, to measure a "
                        "variant of the default (give it its own --key) [none]")
    parser.add_argument("--key", default="satellite", help="the entry of the results file to write [%(default)s]")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-satellite"), help="[%(default)s]")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json", help="[%(default)s]")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = read(args.results)
    command = " ".join(["python run.py --dataset folder --data-dir", str(args.data_dir), *crop_flag(args.crop)])
    command += (f" --epochs {args.epochs}" if args.epochs else "") + (f" {args.run_args}" if args.run_args else "")
    entry = results.get(args.key) if isinstance(results.get(args.key), dict) else {}
    stored = {row["seed"]: row for row in entry["seeds"]} if entry.get("command") == command else {}
    seeds = []
    for seed in args.seeds:
        if seed in stored and not (args.out / f"srvae-seed{seed}" / "metrics.json").exists():
            print(f"seed {seed}: read from {args.results.name}[{args.key!r}]")
            seeds.append(stored[seed])
        else:
            seeds.append(one_seed(seed, args, args.out))
    table = {key: spread(row[key] for row in seeds) for key in (*SRVAE_KEYS, *CNN_KEYS, *STABILITY_KEYS)}
    table["srvae_minus_bicubic_psnr"] = spread(row["sr_psnr"] - row["bicubic_psnr"] for row in seeds)
    table["srvae_minus_cnn_psnr"] = spread(row["sr_psnr"] - row["cnn_psnr"] for row in seeds)
    for key, value in table.items():
        print(f"{key:<28} {value}")
    record(args.results, args.key, {"command": command, "seeds": seeds, "summary": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
