"""The training loop: the chosen −ELBO minimised by Adam over minibatches (SPEC §7, 'Train'), with
safeguards: checkpoints a run can resume from exactly, a clean stop on request, and no non-finite
or absurd step ever reaching the parameters."""

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from model.elbo import explicit_elbo
from training.batches import epoch_batches, epoch_order
from training.distributed import SingleProcess
from training.progress import SPIKE_CLIP, Progress
from training.rng import rng_state, set_rng_state
from training.warmup import kl_scale, lr_factor


class TrainingStopped(Exception):
    """Training ended early; ``progress`` says where."""

    def __init__(self, message: str, progress: Progress):
        super().__init__(message)
        self.progress = progress


class NonFiniteSteps(TrainingStopped):
    """``max_bad_steps`` steps in a row had a non-finite or absurd loss or gradient norm."""


class Interrupted(TrainingStopped):
    """``should_stop()`` asked for a stop (Ctrl-C, SIGTERM); a checkpoint of the state at the stop was written."""


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel: one pass over all parameters instead of a dozen small operations
    per tensor, the same update up to rounding."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def gradient_norm(params, clip_norm: torch.Tensor | float | None) -> torch.Tensor:
    """‖∇‖₂ over every parameter's gradient, the gradients scaled down to a norm of ``clip_norm`` (a
    number or a tensor) when it is lower; the norm returned is the one before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if clip_norm is not None:
        torch._foreach_mul_(grads, (clip_norm / (norm + 1e-6)).clamp(max=1.0))
    return norm


@dataclass(frozen=True)
class TrainingOptions:
    """How to train: ``epochs`` passes of minibatches of ``batch_size`` images, Adam at learning rate
    ``lr`` times the ``lr_schedule``'s factor (``training.warmup.lr_factor``), the KL terms scaled by β
    rising from 0 to 1 over ``kl_warmup`` epochs (0: none), bfloat16 autocast with ``amp``, the
    gradient's norm clipped to ``clip_norm`` and to ``spike_clip`` times the running median of the recent
    steps' (``Progress.clip_limit``; None or 0: not), a stop after ``max_bad_steps`` skipped steps in a row, a
    checkpoint every ``checkpoint_every`` steps as well as after each epoch (0: after each epoch only),
    on ``device`` (default: where the data live), and with ``monitor_test`` a −ELBO of the test images
    after each epoch. Data-parallel training: ``ranks`` (``training.distributed``), and ``order(epoch)``
    giving this process's batches (default: all images in a random order)."""

    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: str = "constant"
    kl_warmup: int = 0
    amp: bool = False
    clip_norm: float | None = None
    spike_clip: float | None = SPIKE_CLIP
    max_bad_steps: int = 10
    checkpoint_every: int = 0
    device: str | None = None
    monitor_test: bool = False
    ranks: object = None
    order: Callable | None = None


@dataclass(frozen=True)
class Callbacks:
    """What the loop reports to and asks of its caller: a progress ``bar`` on the terminal,
    ``on_epoch(row)`` after each epoch, ``checkpoint(state)`` with everything needed to continue, and
    ``should_stop()`` (Ctrl-C, SIGTERM) asked once per step."""

    bar: bool = False
    on_epoch: Callable[[dict], None] | None = None
    checkpoint: Callable[[dict], None] | None = None
    should_stop: Callable[[], bool] | None = None


def train(model, guide, data, objective: nn.Module, options: TrainingOptions, callbacks: Callbacks = Callbacks(),
          resume: dict | None = None) -> list[dict]:
    """Minimise ``objective`` (a module of ``training.objectives``: the −ELBO of a batch) over
    ``objective.parameters()`` by Adam, ``options.epochs`` passes over ``data.train_values`` (fresh
    dequantization each batch; data kept on the host come through a DataLoader).

    Returns one history row per epoch: the mean training loss per image, with ``monitor_test`` a
    one-sample explicit −ELBO per test image (for the loss curves), γ₁, γ₂, the KL scale, the steps
    skipped and those clipped, the median and largest gradient norm, and the elapsed seconds. The test −ELBO is never
    KL-scaled, and stays float32 under ``amp``.

    Safeguards:
    - a step whose loss or gradient norm is not finite, or is absurd (``Progress.absurd``: orders of
      magnitude above the recent good steps), is skipped (the parameters and Adam's moments are not
      touched) and counted; after ``max_bad_steps`` in a row ``NonFiniteSteps`` is raised, no
      checkpoint being written, so the last one on disk is the last good state. So is an epoch
      whose parameters give a non-finite or absurd test −ELBO (``Progress.broken``).
    - ``callbacks.checkpoint(state)`` is called with everything needed to continue (optimizer,
      ``Progress``, random-number states) before the first step, after every epoch, every
      ``checkpoint_every`` steps, and when ``callbacks.should_stop()`` turns true (then
      ``Interrupted`` is raised). ``resume=state`` continues from such a state: the same steps, on
      the same batches, with the same random draws as the uninterrupted run.

    Data-parallel training: ``options.ranks`` sums the epoch's loss over the processes and makes them
    agree on skipping a step and on stopping; the state handed to ``checkpoint`` then holds every
    process's progress and random streams under ``"ranks"``.
    """
    o, ranks = options, options.ranks or SingleProcess()
    params = list(objective.parameters())
    optimizer = adam(params, o.lr)
    device = o.device or data.train_values.device
    order = o.order or (lambda epoch: epoch_order(data, o.batch_size))
    test_x, test_y = data.test_pair() if o.monitor_test else (None, None)
    state = Progress()
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = o.lr  # a resumed run may change its learning rate
        own = resume["ranks"][ranks.rank] if ranks.world_size > 1 else resume
        state = Progress.from_dict(own["progress"], data.train_values.device, device)
        set_rng_state(own["rng"])

    def save():
        states = ranks.gather({"progress": state.to_dict(), "rng": rng_state()})
        if callbacks.checkpoint is not None:
            callbacks.checkpoint({"optimizer": optimizer.state_dict(), **states[0],
                                  **({"ranks": states} if ranks.world_size > 1 else {})})

    if resume is None:
        save()  # a run killed in its first epoch resumes from its start
    start, before = time.perf_counter(), state.seconds
    bar = tqdm(range(state.epoch + 1, o.epochs + 1), desc="training", unit="epoch", disable=not callbacks.bar,
               leave=False, initial=state.epoch, total=o.epochs)
    for epoch in bar:
        if state.order is None:
            state.start_epoch(order(epoch), device)
        steps = len(state.order)  # this process's share of the epoch
        batches = epoch_batches(data, state.order[state.step:], device)
        for i, (index, x, y) in enumerate(batches, start=state.step):
            for group in optimizer.param_groups:
                group["lr"] = o.lr * lr_factor(o.lr_schedule, state.steps_done, o.epochs * steps)
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=o.amp):
                loss = objective(x, y, kl_scale=kl_scale(epoch, (i + 1) / steps, o.kl_warmup), index=index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            loss = loss.detach()
            limit = state.clip_limit(o.clip_norm, o.spike_clip)
            norm = gradient_norm(params, limit)
            good = torch.isfinite(loss) & torch.isfinite(norm) & ~state.absurd(loss / len(index), norm)
            good, stop = ranks.agree(good, callbacks.should_stop is not None and callbacks.should_stop())
            if good:
                optimizer.step()
                state.good_step(loss, len(index), norm, False if limit is None else norm > limit)
            else:
                state.bad_step()
                if state.in_a_row >= o.max_bad_steps:
                    raise NonFiniteSteps(f"{state.in_a_row} steps in a row had a non-finite or absurd loss or "
                                         f"gradient (epoch {epoch}, step {i + 1} of {steps})", state)
            state.step, state.steps_done = i + 1, state.steps_done + 1
            state.seconds = before + time.perf_counter() - start
            if stop:
                save()
                raise Interrupted(f"stopped at epoch {epoch}, step {i + 1} of {steps}", state)
            if o.checkpoint_every and state.steps_done % o.checkpoint_every == 0:
                save()
        images = ranks.count(state.images)
        row = {"epoch": epoch, "train_loss": ranks.sum(state.total).item() / max(images, 1),
               "kl_scale": kl_scale(epoch, 1.0, o.kl_warmup),
               "skipped_steps": state.skipped, "clipped_steps": int(state.clipped), **state.gradient_norms()}
        if test_x is not None and guide.amortized:  # a local guide knows only its own images
            with torch.no_grad():
                test = -explicit_elbo(model, guide.guide, test_x, test_y).elbo.mean()
                row["test_loss"] = (ranks.sum(test) / ranks.world_size).item()  # each process's estimate, averaged
        if "test_loss" in row and state.broken(row["test_loss"]):
            raise NonFiniteSteps(f"after epoch {epoch} the test −ELBO is {row['test_loss']:.4g} per image: the "
                                 "parameters broke down in that epoch", state)
        row.update(**model.gammas(), seconds=before + time.perf_counter() - start)
        state.end_epoch(epoch, row)
        save()
        bar.set_postfix(loss=f"{row['train_loss']:.2f}/img", test=f"{row.get('test_loss', float('nan')):.2f}")
        if callbacks.on_epoch is not None:
            callbacks.on_epoch(row)
    bar.close()
    return state.history
