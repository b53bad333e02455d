"""Data-parallel training with PyTorch's distributed engine.

``torchrun --nproc_per_node=N run.py …`` starts N processes; each builds the same model, draws its
own shard of every epoch (``DistributedSampler``) with its own random streams, and computes Pyro's
ELBO on it through the objective module (``Trace_ELBO()(model, guide)``) wrapped in
``DistributedDataParallel``, which averages the gradients over the processes. Each process's
gradient is scaled by N (``DataParallelObjective``), so that the average is the gradient of the
−ELBO summed over the union of the N batches: one step of N processes is one single-process step on
their union batch (tested).
"""

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler


def launched_world_size() -> int:
    """The number of processes ``torchrun`` started (1 when run plainly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


class SingleProcess:
    """The collective operations of one process alone: each is the identity."""

    rank, world_size = 0, 1

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def count(self, n: int) -> int:
        """``n`` summed over the processes."""
        return n

    def agree(self, finite: torch.Tensor, stop: bool) -> tuple[bool, bool]:
        """Whether every process's step is finite, and whether any process was asked to stop."""
        return bool(finite), stop

    def gather(self, value) -> list:
        return [value]

    def broadcast(self, value):
        return value

    def close(self, wait: bool = True) -> None:
        pass


class ProcessGroup(SingleProcess):
    """The default process group that ``torchrun`` describes in the environment (or that ``init``,
    keywords of ``init_process_group``, describes): NCCL between GPUs, gloo between CPU processes.
    Each process uses GPU ``LOCAL_RANK`` when on CUDA.

    ``torch._dynamo`` is imported before the group is made. ``DistributedDataParallel`` imports it,
    and imported once a group exists it keeps that group's gloo backend alive past
    ``destroy_process_group`` (torch 2.14.1; found by bisecting imports, the holder not found). The
    backend's worker threads then outlive ``close()``, and one that frees a finished collective
    while Python shuts down aborts the process ("terminate called without an active exception", in
    about 1 two-process run in 10 here). Imported first, ``close()`` ends those threads (tested)."""

    def __init__(self, device_type: str, **init):
        import torch._dynamo  # before the group is made: see the docstring

        if device_type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo", **init)
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        on_gpu = device_type == "cuda"
        self.device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        value = value.to(self.device, copy=True)  # NCCL reduces GPU tensors only
        dist.all_reduce(value)
        return value

    def count(self, n: int) -> int:
        return int(self.sum(torch.tensor(n, device=self.device)))

    def agree(self, finite: torch.Tensor, stop: bool) -> tuple[bool, bool]:
        flags = torch.stack([finite.to(self.device, torch.int32), torch.tensor(int(not stop), device=self.device)])
        dist.all_reduce(flags, op=dist.ReduceOp.MIN)  # one collective for both
        return bool(flags[0]), not bool(flags[1])

    def gather(self, value) -> list:
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value):
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self, wait: bool = True) -> None:
        """Leave the group, with ``wait`` once every process is done with it (after an error, a peer may
        be inside a collective, so do not wait). Free every DDP module first, and every graph that
        holds one, so that nothing holds the group's backend and its threads end here."""
        if dist.is_initialized():
            if wait:
                dist.barrier()
            dist.destroy_process_group()


def scale_gradient(value: torch.Tensor, factor: float) -> torch.Tensor:
    """``value`` itself, whose gradient is ``factor`` times its own: factor·v − (factor − 1)·v, the second
    term not differentiated."""
    return factor * value - (factor - 1) * value.detach()


class DataParallelObjective(nn.Module):
    """One process's training objective: ``objective`` (a module of ``training.objectives``) wrapped in
    ``DistributedDataParallel``, called like it. Its value is this process's −ELBO; its gradient is
    ``ranks.world_size`` times that, so that DDP's average over the processes is the gradient of the
    −ELBO summed over their union batch. Keep it alive until the backward pass is done: DDP's
    gradient all-reduce belongs to it, and a temporary one (``DataParallelObjective(...)(x).backward()``)
    silently leaves the gradients local."""

    def __init__(self, objective: nn.Module, ranks):
        super().__init__()
        self.world_size = ranks.world_size
        device = next(objective.parameters()).device
        self.ddp = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)

    def forward(self, x, y=None, kl_scale: float = 1.0, index=None):
        return scale_gradient(self.ddp(x, y, kl_scale=kl_scale, index=index), self.world_size)


def shard_order(data, batch_size: int, ranks, seed: int):
    """``order(epoch)`` for the training loop: this process's shard of a random order of the training
    images, one index tensor per batch. ``DistributedSampler`` pads the shards to equal length (by
    repeating a few images), so every process takes the same number of steps."""
    sampler = DistributedSampler(range(len(data.train_values)), num_replicas=ranks.world_size, rank=ranks.rank,
                                 shuffle=True, seed=seed)

    def order(epoch: int) -> list[torch.Tensor]:
        sampler.set_epoch(epoch)
        return list(torch.tensor(list(sampler), device=data.train_values.device).split(batch_size))
    return order


def sharded(estimate, ranks):
    """``estimate(model, guide, x, y, **options)``, one value per image, computed by every process on
    its share of the images (every N-th from its rank) and gathered by all in the images' order: the
    importance-weighted evaluation, the costliest, divided among the processes."""

    def on_shards(model, guide, x, y=None, progress=None, **options):
        mine = slice(ranks.rank, None, ranks.world_size)
        if progress is not None:  # this process's images done, as a share of all
            options["progress"] = lambda done: progress(min(len(x), done * ranks.world_size))
        part = estimate(model, guide, x[mine], None if y is None else y[mine], **options)
        values = torch.empty(len(x), dtype=part.dtype)
        for rank, values_of_rank in enumerate(ranks.gather(part.cpu())):
            values[rank::ranks.world_size] = values_of_rank
        return values.to(part.device)
    return on_shards
