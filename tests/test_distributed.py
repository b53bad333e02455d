"""Data-parallel training, two CPU processes talking through gloo.

The processes are started with ``torch.multiprocessing``; each writes what it holds to a file that
the test then compares.
"""

import os
import subprocess
import sys
from pathlib import Path

import pyro
import pytest
import torch
import torch.multiprocessing as mp
from pyro.infer import Trace_ELBO
from pyro.poutine.messenger import Messenger

from data import load_dataset
from experiment.config import RunConfig
from training.build import build_model_and_guide
from training.distributed import DataParallelObjective, ProcessGroup, shard_order, sharded
from training.loop import Callbacks, TrainingOptions, train
from training.objectives import make_objective

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"guide": "amortized", "prior": "normal", "components": 10, "latent_u": 4, "latent_z": 8,
          "hidden": 32, "depth": 2, "scale": 2, "downscale": "area", "gamma_init": 0.1, "gamma_min": 1e-3}
BATCH = 16  # images per process


class FixedNoise(Messenger):
    """Draws the guide's Gaussian sites as loc + scale · ε with given ε (rows = images): the same
    reparameterised sample and gradients as ``rsample``, but with draws chosen by the test."""

    def __init__(self, noise: dict):
        super().__init__()
        self.noise = noise

    def _pyro_sample(self, msg):
        if msg["name"] in self.noise and not msg["is_observed"]:
            normal = msg["fn"].base_dist
            msg["value"] = normal.loc + normal.scale * self.noise[msg["name"]]
            msg["done"] = True


def union_batch():
    """2 × BATCH digits and the noise of their u and z draws."""
    x = load_dataset("digits").test_images()[: 2 * BATCH]
    generator = torch.Generator().manual_seed(1)
    return x, {"u": torch.randn(2 * BATCH, 4, generator=generator), "z": torch.randn(2 * BATCH, 8, generator=generator)}


def threads() -> set[str]:
    """The ids of the threads this process runs now, native ones included (gloo's are)."""
    return set(os.listdir("/proc/self/task"))


def join(rank: int, world: int, folder: str) -> tuple[ProcessGroup, set[str]]:
    """This process's place in a gloo group of ``world`` processes met through a file in ``folder``,
    and the ids of the threads that the group started."""
    before = threads()
    ranks = ProcessGroup("cpu", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    return ranks, threads() - before


def leave(ranks: ProcessGroup, started: set[str]) -> int:
    """Close the group; how many of the threads it started still run (0 when its backend was freed:
    one left running can abort the process as Python shuts down). Counted by id, so that a thread that
    ends on its own while the group is open, or one that starts meanwhile, does not move the count."""
    ranks.close()
    return len(started & threads())


def models():
    pyro.set_rng_seed(0)
    return build_model_and_guide(RunConfig(**CONFIG), (1, 8, 8))


def gradients(model, guide) -> list[torch.Tensor]:
    return [p.grad.clone() for p in [*model.parameters(), *guide.parameters()]]


def one_step_on_a_shard(rank: int, world: int, folder: str) -> None:
    """One DDP step of the −ELBO on this process's half of the union batch, with its half of the noise."""
    torch.set_num_threads(1)
    ranks, started = join(rank, world, folder)
    model, guide = models()
    x, noise = union_batch()
    mine = slice(rank * BATCH, (rank + 1) * BATCH)
    guide.guide = FixedNoise({name: eps[mine] for name, eps in noise.items()})(guide.guide)
    objective = DataParallelObjective(make_objective("pyro", model, guide), ranks)  # kept alive: DDP's reducer
    # must outlive the backward pass
    loss = objective(x[mine])
    loss.backward()
    held = {"gradients": gradients(model, guide), "loss": ranks.sum(loss.detach())}
    del loss, objective  # the graph holds DDP's reducer, which must go before its process group
    torch.save({**held, "threads_left": leave(ranks, started)}, f"{folder}/rank{rank}.pt")


def test_one_two_process_step_is_one_single_process_step_on_the_union_batch(tmp_path):
    mp.spawn(one_step_on_a_shard, args=(2, str(tmp_path)), nprocs=2)
    model, guide = models()
    x, noise = union_batch()
    with_noise = FixedNoise(noise)(guide.guide)
    loss = Trace_ELBO(max_plate_nesting=1).differentiable_loss(model.model, with_noise, x, guide.d(x))
    loss.backward()
    expected = gradients(model, guide)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got["threads_left"] == 0  # closing the group ended its threads, DDP notwithstanding
        # each process's loss is its own batch's −ELBO: their sum is the union's (the gradients are scaled)
        assert torch.allclose(got["loss"], loss.detach(), rtol=1e-5)
        for g, e in zip(got["gradients"], expected, strict=True):
            assert torch.allclose(g, e, rtol=1e-4, atol=1e-5 * e.abs().max().item()), (g - e).abs().max()


def first_images(n: int):
    data = load_dataset("digits")
    return data.with_options(train_values=data.train_values[:n])


def train_on_shards(rank: int, world: int, folder: str) -> None:
    """Two epochs of the real loop on this process's shards of 200 digits; rank 0 keeps the checkpoint state."""
    torch.set_num_threads(1)
    ranks, started = join(rank, world, folder)
    model, guide = models()
    pyro.set_rng_seed(100 + rank)  # each process its own draws
    data = first_images(200)
    saved = []
    options = TrainingOptions(epochs=2, batch_size=BATCH, ranks=ranks, order=shard_order(data, BATCH, ranks, seed=0))
    history = train(model, guide, data, DataParallelObjective(make_objective("pyro", model, guide), ranks), options,
                    Callbacks(checkpoint=saved.append if rank == 0 else None))
    torch.save({"srvae": model.state_dict(), "guide": guide.state_dict(), "history": history,
                "checkpoint": saved[-1] if saved else None, "threads_left": leave(ranks, started)},
               f"{folder}/rank{rank}.pt")


def test_two_processes_hold_identical_parameters_after_training_and_agree_on_the_loss(tmp_path):
    mp.spawn(train_on_shards, args=(2, str(tmp_path)), nprocs=2)
    zero, one = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert zero["threads_left"] == one["threads_left"] == 0
    for part in ("srvae", "guide"):
        for key, value in zero[part].items():
            assert torch.equal(value, one[part][key]), key
    untimed = [[{k: v for k, v in row.items() if k != "seconds"} for row in r["history"]] for r in (zero, one)]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 2
    # the training loss per image is the −ELBO's (each process minimises its own, gradients scaled by N): close
    # to one process's on the union batches (other draws, so not equal)
    model, guide = models()
    alone = train(model, guide, first_images(200), make_objective("pyro", model, guide),
                  TrainingOptions(epochs=2, batch_size=2 * BATCH))
    for together, single in zip(zero["history"], alone, strict=True):
        assert abs(together["train_loss"] - single["train_loss"]) < 0.05 * abs(single["train_loss"])
    assert one["checkpoint"] is None  # only rank 0 hands over checkpoints
    checkpoint = zero["checkpoint"]
    assert len(checkpoint["ranks"]) == 2
    assert [r["progress"]["epoch"] for r in checkpoint["ranks"]] == [2, 2]
    first, second = (r["rng"]["torch"] for r in checkpoint["ranks"])
    assert not torch.equal(first, second)  # the processes draw from different streams


def per_image_sums(model, guide, x, y=None, **options):
    """A stand-in estimate with one known value per image: its pixel sum."""
    return x.flatten(1).sum(1)


def gather_sums(rank: int, world: int, folder: str) -> None:
    ranks, started = join(rank, world, folder)
    x = load_dataset("digits").test_images()[:7]  # 4 images for process 0, 3 for process 1
    values = sharded(per_image_sums, ranks)(None, None, x)
    torch.save({"values": values, "threads_left": leave(ranks, started)}, f"{folder}/rank{rank}.pt")


def test_a_sharded_estimate_gives_every_process_all_values_in_the_images_order(tmp_path):
    mp.spawn(gather_sums, args=(2, str(tmp_path)), nprocs=2)
    expected = per_image_sums(None, None, load_dataset("digits").test_images()[:7])
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.equal(got["values"], expected) and got["threads_left"] == 0


def test_each_process_draws_a_disjoint_half_of_every_epoch():
    class Ranks:
        world_size = 2

        def __init__(self, rank):
            self.rank = rank

    data = load_dataset("digits")
    for epoch in (1, 2):
        halves = [torch.cat(shard_order(data, BATCH, Ranks(r), seed=0)(epoch)).tolist() for r in (0, 1)]
        assert len(halves[0]) == len(halves[1]) == (len(data.train_values) + 1) // 2
        assert sorted(set(halves[0]) | set(halves[1])) == list(range(len(data.train_values)))
        assert len(set(halves[0]) & set(halves[1])) <= 1  # only the padding repeats an image


def test_torchrun_trains_writes_once_and_resumes_to_the_uninterrupted_run(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "run.py"]
    quick = ["--hidden", "32", "--eval-particles", "4", "--eval-repeats", "2", "--eval-max-particles", "8",
             "--sr-samples", "4", "--iw-samples", "8", "--test-images", "20",
             "--lr-schedule", "constant"]  # more epochs re-plan a cosine schedule

    def launch(*args):
        result = subprocess.run([*torchrun, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        return result

    result = launch(*quick, "--epochs", "1", "--out", str(tmp_path / "resumed"))
    assert result.stdout.count("outputs in") == 1  # process 0 alone prints and writes
    checkpoint = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["world_size"] == 2 and len(checkpoint["training"]["ranks"]) == 2
    assert checkpoint["metrics"]["iw_processes"] == 2 and checkpoint["metrics"]["iw_neg_log_likelihood_se"] > 0
    launch("--resume", str(tmp_path / "resumed"), "--epochs", "2")
    launch(*quick, "--epochs", "2", "--train-only", "--out", str(tmp_path / "straight"))  # its training is compared
    resumed, straight = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=True)
                         for name in ("resumed", "straight"))
    for part in ("srvae", "guide"):
        for key, value in straight[part].items():
            assert torch.equal(value, resumed[part][key]), key
    untimed = [[{k: v for k, v in row.items() if k != "seconds"} for row in c["history"]] for c in (resumed, straight)]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 2


@pytest.mark.parametrize(("flags", "expected"), [
    (["--guide", "local"], "--guide local under torchrun"),
    (["--guide", "semi-amortized"], "--guide semi-amortized under torchrun"),
    (["--objective", "explicit"], "--objective explicit under torchrun"),
    (["--evaluate", "x.pt"], "--evaluate runs in one process"),
])
def test_what_data_parallel_training_cannot_do_is_refused(flags, expected):
    from experiment.checks import UsageError, check_distributed
    from experiment.cli import parse

    class TwoProcesses:
        rank, world_size = 0, 2

    request = parse(flags)
    with pytest.raises(UsageError, match=expected):
        check_distributed(request.config, TwoProcesses(), evaluating=request.evaluate is not None)
