"""Every check that needs a GPU, in one go, printing its figures (a few minutes on one GPU):

    python -m bench.gpu_check [--device cuda|cpu] [--small] [--out DIR]

1. the CUDA tests; 2. the benchmark's table; 3. the scene's speed in megapixels of output per second,
beside the CNN; 4. the evaluation's cost per test image beside a training epoch's, and its share of the
default digits and MNIST runs, on the GPU; 5. a short conv training on the Malmö scene, with its
evaluation; 6. that model applied to the whole 600×600 scene by superresolve.py. The steps that need no
trained model come first, so that a check stopped early still reports them. They run in this one
process (the CUDA tests in pytest's). ``--small`` makes every step tiny (the digits, a 24×24
scene), so that the tests know the check works on a machine without a GPU (``--device cpu``).
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SMALL_EVALUATION = ["--test-images", "32", "--eval-particles", "8", "--eval-repeats", "2", "--eval-max-particles", "16",
                    "--iw-samples", "10", "--sr-samples", "8"]


def cuda_tests(args) -> int:
    if args.device != "cuda":
        print(f"skipped: --device {args.device}")
        return 0
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_cuda.py"], cwd=ROOT).returncode


def benchmark_table(args) -> int:
    from bench.__main__ import main

    size = "--smoke" if args.small else "--quick"
    return main(["--device", args.device, size, "--out", str(args.out / "bench.json")])


def training(args) -> int:
    sys.path.insert(0, str(ROOT))
    from run import main

    if args.small:
        return main(["--arch", "conv", "--channels", "8", "--epochs", "1", *SMALL_EVALUATION, "--device", args.device,
                     "--out", str(args.out / "train")])
    return main(["--dataset", "folder", "--data-dir", str(ROOT / "data" / "sentinel2"), "--crop", "32", "--epochs",
                 "100", "--device", args.device, "--out", str(args.out / "train")])


def scene(args) -> int:
    from experiment.scene import superresolve

    image = ROOT / "data" / "sentinel2" / "hr" / "malmo_10m.npy"
    if args.small:
        image = args.out / "scene.npy"
        np.save(image, np.random.default_rng(0).integers(0, 17, (1, 24, 24)))
    return superresolve([str(args.out / "train"), str(image), "--device", args.device, "--out",
                         str(args.out / "scene"), "--overwrite"])


def scene_speed(args) -> int:
    from bench.scene import main

    small = ["--side", "16", "--repeats", "1"] if args.small else []
    return main(["--device", args.device, *small, "--out", str(args.out / "bench.json")])


def evaluation_cost(args) -> int:
    from bench.evaluation import main

    size = ["--train-steps", "2", "--test-images", "4", "--setups", "mlp"] if args.small else [
        "--test-images", "100", "--k-shift-images", "20"]
    return main(["--device", args.device, *size, "--out", str(args.out / "bench.json")])


STEPS = {"the CUDA tests": cuda_tests, "the benchmark's table": benchmark_table, "the scene's speed": scene_speed,
         "the evaluation's cost": evaluation_cost, "a short conv training": training,
         "a whole scene super-resolved": scene}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="[%(default)s]")
    parser.add_argument("--small", action="store_true", help="every step tiny: shows that the check runs")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "gpu-check", help="[%(default)s]")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for number, (name, step) in enumerate(STEPS.items(), start=1):
        print(f"\n== {number}. {name} ({time.perf_counter() - start:.0f} s so far)", flush=True)
        status = step(args)
        if status:
            print(f"gpu_check: step {number} ({name}) ended with status {status}", file=sys.stderr)
            return status
    print(f"\ngpu_check done in {time.perf_counter() - start:.0f} s on {args.device}; figures in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
