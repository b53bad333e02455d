"""The performance benchmark (not a test): ``python -m bench [--quick] [--out FILE]``.

Everything is measured side by side in this one process, on the same model, data and batch:
each figure is the median of repeated timed runs after warm-up, the methods interleaved so that
drift of the machine hits them alike. It prints a table and writes it as JSON.
"""

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyro
import torch

from bench.plain import plain_neg_elbo
from experiment.config import RunConfig
from training.build import build_model_and_guide
from training.loop import adam
from training.objectives import make_objective

CONFIG = {"guide": "amortized", "prior": "normal", "components": 10, "latent_u": 4, "latent_z": 8, "hidden": 256,
          "depth": 2, "scale": 2, "downscale": "area", "gamma_init": 0.1, "gamma_min": 1e-3, "channels": 32,
          "blocks": 1, "feature_norm": True, "noise": "scalar"}
SETUPS = {"mlp / digits 8×8": ("mlp", (1, 8, 8)), "conv / 28×28": ("conv", (1, 28, 28))}
DEFAULT_BATCH = 64


def models(arch, shape, device):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    return build_model_and_guide(RunConfig(**{**CONFIG, "arch": arch}), shape, device)


def step_times(arch, shape, batch, device, repeats, steps) -> dict:
    """Median seconds per training step (loss, backward, Adam) of each objective on one batch."""
    from pyro.infer import Trace_ELBO

    model, guide = models(arch, shape, device)
    pyro_loss, jit_loss = make_objective("pyro", model, guide), make_objective("pyro-jit", model, guide)
    optimizer = adam(pyro_loss.parameters(), lr=1e-3)  # the training loop's
    x = torch.rand((batch, *shape), generator=torch.Generator().manual_seed(0)).to(device)
    elbo = Trace_ELBO(max_plate_nesting=1)
    losses = {"Trace_ELBO": lambda: pyro_loss(x), "JitTrace_ELBO": lambda: jit_loss(x),
              "plain PyTorch": lambda: plain_neg_elbo(model, guide, x),
              # the same estimator on the model and guide functions, not through the objective module
              "Trace_ELBO, functions": lambda: elbo.differentiable_loss(model.model, guide.guide, x, guide.d(x))}
    times = {name: [] for name in losses}
    for _ in range(repeats):
        for name, loss in losses.items():
            for i in range(steps + 2):  # two warm-up steps, then ``steps`` timed ones
                if i == 2:
                    synchronize(device)
                    start = time.perf_counter()
                value = loss()
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
            synchronize(device)
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(values) for name, values in times.items()}


def pyro_floor(device, batch=DEFAULT_BATCH, steps=300) -> dict:
    """Seconds per Trace_ELBO step (loss and backward) of a model with the SRVAE's sites and plate,
    u → y → z → x with x and y observed, but no networks: what Pyro's machinery alone costs."""
    import pyro.distributions as dist
    from pyro.infer import Trace_ELBO

    loc = torch.zeros(batch, 4, device=device, requires_grad=True)
    x, y = torch.rand(batch, 1, 8, 8, device=device), torch.rand(batch, 1, 4, 4, device=device)

    def model(x, y):
        with pyro.plate("data", batch, dim=-1, device=device):
            u = pyro.sample("u", dist.Normal(torch.zeros(batch, 4, device=device), 1.0).to_event(1))
            pyro.sample("y", dist.Normal(u.mean(-1)[:, None, None, None].expand(y.shape), 0.1).to_event(3), obs=y)
            z = pyro.sample("z", dist.Normal(u.repeat(1, 2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z.mean(-1)[:, None, None, None].expand(x.shape), 0.1).to_event(3), obs=x)

    def guide(x, y):
        with pyro.plate("data", batch, dim=-1, device=device):
            pyro.sample("u", dist.Normal(loc, 1.0).to_event(1))
            pyro.sample("z", dist.Normal(loc.repeat(1, 2), 1.0).to_event(1))

    elbo = Trace_ELBO(max_plate_nesting=1)
    for _ in range(20):
        elbo.differentiable_loss(model, guide, x, y).backward()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        elbo.differentiable_loss(model, guide, x, y).backward()
    synchronize(device)
    return {"batch": batch, "step_ms": (time.perf_counter() - start) / steps * 1e3}


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def iw_evaluation(device, samples=1000, repeats=3) -> dict:
    """The K-sample importance-weighted log-likelihood of the digits test set: vectorized over the
    samples (chunked) against a loop over them, both giving the same estimator (medians of
    ``repeats`` interleaved runs)."""
    from data import load_dataset
    from evaluation.loglik import importance_weighted_log_likelihood, log_weights

    model, guide = models("mlp", (1, 8, 8), device)
    x = load_dataset("digits").to(device).test_images()

    def vectorized_run():
        importance_weighted_log_likelihood(model, guide, x, num_samples=samples)

    def loop_run():
        loop = torch.stack([log_weights(model, guide, x, num_samples=1)[0] for _ in range(samples)])
        torch.logsumexp(loop, 0) - math.log(samples)

    with torch.no_grad():
        importance_weighted_log_likelihood(model, guide, x[:16], num_samples=samples)  # warm-up
        times = {vectorized_run: [], loop_run: []}
        for _ in range(repeats):
            for run, seconds in times.items():
                synchronize(device)
                start = time.perf_counter()
                run()
                synchronize(device)
                seconds.append(time.perf_counter() - start)
        vectorized, looped = (statistics.median(seconds) for seconds in times.values())
        few = x[:4]  # a loop over samples and over images, one draw of one image per call
        start = time.perf_counter()
        for image in few.split(1):
            torch.logsumexp(torch.cat([log_weights(model, guide, image)[0] for _ in range(samples)]), 0)
        synchronize(device)
        per_image_loop = (time.perf_counter() - start) / len(few)
        flops = matmul_flops(vectorized_run)
        loop_flops = matmul_flops(lambda: log_weights(model, guide, x, num_samples=1)) * samples
    peak = matmul_rate(device, rows=64 * 64, width=CONFIG["hidden"])
    return {"images": len(x), "samples": samples, "vectorized_seconds": vectorized, "loop_seconds": looped,
            "images_per_second": len(x) / vectorized, "speedup": looped / vectorized,
            "loop_per_image_seconds_per_image": per_image_loop,
            "speedup_over_per_image_loop": per_image_loop / (vectorized / len(x)),
            "matmul_gflop": flops / 1e9, "loop_matmul_gflop": loop_flops / 1e9,
            "matmul_peak_gflop_per_second": peak / 1e9, "matmul_floor_seconds": flops / peak,
            "largest_possible_speedup": looped / (flops / peak),
            "peak_memory_mb": iw_peak_memory(device, samples)}


def matmul_flops(fn) -> int:
    """Floating-point operations of the matrix products (linear layers, convolutions) that ``fn`` runs."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_rate(device, rows: int, width: int, repeats: int = 50) -> float:
    """FLOP/s of a bare (rows × width) @ (width × width) product, the shape of the evaluation's
    hidden layers: what this machine's matrix products reach at best."""
    a, b = torch.randn(rows, width, device=device), torch.randn(width, width, device=device)
    for _ in range(5):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * rows * width * width * repeats / (time.perf_counter() - start)


def iw_peak_memory(device, samples) -> float:
    """Extra peak memory of one K-sample evaluation (MB): CUDA's peak allocation, or on the CPU the
    growth of the resident set's high-water mark (VmHWM, reset through /proc/self/clear_refs, since
    a child's ru_maxrss starts from its parent's) in a fresh process."""
    code = ("import torch\n"
            "from bench.__main__ import models, resident_mb\n"
            "from data import load_dataset\n"
            "from evaluation.loglik import importance_weighted_log_likelihood\n"
            f"model, guide = models('mlp', (1, 8, 8), {device!r})\n"
            f"x = load_dataset('digits').to({device!r}).test_images()\n"
            "open('/proc/self/clear_refs', 'w').write('5')\n"
            "before = resident_mb('VmRSS')\n"
            "if x.is_cuda: torch.cuda.reset_peak_memory_stats()\n"
            "with torch.no_grad():\n"
            f"    importance_weighted_log_likelihood(model, guide, x, num_samples={samples})\n"
            "print(torch.cuda.max_memory_allocated() / 2**20 if x.is_cuda else resident_mb('VmHWM') - before)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def resident_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def epoch_scaling(device, factors=(1, 2, 4), repeats=3) -> dict:
    """Seconds per training epoch on the digits repeated 1×, 2×, 4×: linear growth means the
    ratios to 1× are 2 and 4."""
    from data import load_dataset
    from training.loop import TrainingOptions, train

    base = load_dataset("digits")
    seconds = {}
    for factor in factors:
        data = base.with_options(train_values=base.train_values.repeat(factor, 1, 1, 1)).to(device)
        model, guide = models("mlp", (1, 8, 8), device)
        loss = make_objective("pyro", model, guide)
        runs, options = [], TrainingOptions(epochs=1, batch_size=DEFAULT_BATCH, device=device)
        for _ in range(repeats):
            history = train(model, guide, data, loss, options)
            runs.append(history[-1]["seconds"])
        seconds[factor] = statistics.median(runs)
    return {f"{f}x": {"images": f * len(base.train_values), "seconds": s, "ratio_to_1x": s / seconds[factors[0]]}
            for f, s in seconds.items()}


def environment(device) -> dict:
    import pyro as pyro_module

    return {"device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
            "device_kind": device, "torch": torch.__version__, "pyro": pyro_module.__version__,
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "python": platform.python_version()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"),
                        help="where to measure [cuda when available]")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a rough table in about a minute)")
    parser.add_argument("--smoke", action="store_true",
                        help="the MLP at batch 64 only, one repeat, no IW or scaling figures: only shows that it runs")
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"), help="JSON file [%(default)s]")
    args = parser.parse_args(argv)
    pyro.enable_validation(False)
    repeats = 1 if args.smoke else 3 if args.quick else 7
    report = {"environment": environment(args.device), "steps": []}
    env = report["environment"]
    print(f"device {env['device']} ({args.device}), torch {env['torch']}, pyro {env['pyro']}, "
          f"{env['threads']} threads", flush=True)
    print(f"\n{'configuration':<18} {'batch':>5}  {'Trace_ELBO':>10} {'Jit':>8} {'plain':>8}  "
          f"{'Trace/plain':>11} {'Jit/plain':>9}  {'images/s (Trace)':>16} {'module/functions':>16}")
    for setup, (arch, shape) in list(SETUPS.items())[:1 if args.smoke else None]:
        for batch in (DEFAULT_BATCH,) if args.smoke else (32, DEFAULT_BATCH, 128, 512):
            steps = 2 if args.smoke else max(2, (30 if arch == "mlp" else 3) * (64 // batch if batch < 64 else 1))
            t = step_times(arch, shape, batch, args.device, repeats, steps)
            row = {"configuration": setup, "batch": batch, **{f"{k}_ms": v * 1e3 for k, v in t.items()},
                   "trace_over_plain": t["Trace_ELBO"] / t["plain PyTorch"],
                   "jit_over_plain": t["JitTrace_ELBO"] / t["plain PyTorch"],
                   "module_over_functions": t["Trace_ELBO"] / t["Trace_ELBO, functions"],
                   "images_per_second": {k: batch / v for k, v in t.items()}}
            report["steps"].append(row)
            print(f"{setup:<18} {batch:>5}  {t['Trace_ELBO'] * 1e3:>8.2f}ms {t['JitTrace_ELBO'] * 1e3:>6.2f}ms "
                  f"{t['plain PyTorch'] * 1e3:>6.2f}ms  {row['trace_over_plain']:>11.3f} {row['jit_over_plain']:>9.3f}"
                  f"  {batch / t['Trace_ELBO']:>16.0f} {row['module_over_functions']:>16.3f}", flush=True)
    if args.smoke:
        return write_report(report, args.out)
    floor = report["pyro_floor"] = pyro_floor(args.device)
    print(f"\nPyro's machinery alone (the same sites and plate, no networks), batch {floor['batch']}: "
          f"{floor['step_ms']:.2f} ms per Trace_ELBO step")
    iw = report["importance_weighted"] = iw_evaluation(args.device, repeats=1 if args.quick else 3)
    print(f"\nIW log p(x, y), K = {iw['samples']}, {iw['images']} digits test images: vectorized "
          f"{iw['vectorized_seconds']:.2f} s ({iw['images_per_second']:.0f} images/s), loop over samples "
          f"{iw['loop_seconds']:.2f} s: {iw['speedup']:.1f}× faster; one image and one sample per call "
          f"{iw['loop_per_image_seconds_per_image']:.2f} s per image: {iw['speedup_over_per_image_loop']:.0f}× "
          f"faster; peak memory +{iw['peak_memory_mb']:.0f} MB")
    print(f"  its matrix products: {iw['matmul_gflop']:.0f} GFLOP (the loop's {iw['loop_matmul_gflop']:.0f}); at the "
          f"{iw['matmul_peak_gflop_per_second']:.0f} GFLOP/s of a bare product of their shape they alone take "
          f"{iw['matmul_floor_seconds']:.2f} s, so no vectorization can be more than "
          f"{iw['largest_possible_speedup']:.1f}× faster than that loop here")
    scaling = report["epoch_scaling"] = epoch_scaling(args.device, repeats=2 if args.quick else 3)
    print("epoch time against data size: " + ", ".join(f"{k} ({v['images']} images) {v['seconds']:.2f} s = "
                                                       f"{v['ratio_to_1x']:.2f}× the 1×" for k, v in scaling.items()))
    return write_report(report, args.out)


def write_report(report: dict, out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
