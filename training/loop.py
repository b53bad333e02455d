"""The training loop: the chosen −ELBO minimised by Adam over minibatches (SPEC §7, 'Train'), with
safeguards: checkpoints a run can resume from exactly, a clean stop on request, and no non-finite
or absurd step ever reaching the parameters."""

import time

import torch
from torch import nn
from tqdm import tqdm

from model.elbo import explicit_elbo
from training.batches import epoch_batches, epoch_order
from training.distributed import SingleProcess
from training.progress import Progress
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


def gradient_norm(params, clip_norm: float | None) -> torch.Tensor:
    """‖∇‖₂ over every parameter's gradient, clipped to ``clip_norm`` when given (the norm returned is
    the one before clipping)."""
    with_grad = [p for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm([p.grad for p in with_grad])
    if clip_norm is not None:
        torch.nn.utils.clip_grads_with_norm_(with_grad, clip_norm, norm)
    return norm


def train(model, guide, data, loss_fn, epochs: int, batch_size: int, lr: float,
          test_x=None, progress: bool = True, on_epoch=None, kl_warmup: int = 0, test_y=None,
          device=None, amp: bool = False, clip_norm: float | None = None, max_bad_steps: int = 10,
          checkpoint=None, checkpoint_every: int = 0, resume: dict | None = None, should_stop=None,
          ranks=None, order=None, lr_schedule: str = "constant") -> list[dict]:
    """Run ``epochs`` passes over ``data.train_values`` (fresh dequantization each batch) on
    ``device`` (default: where the data live; data kept on the host come through a DataLoader).

    Returns one history row per epoch: the mean training loss per image, a one-sample explicit
    −ELBO per image on ``test_x`` (paired with ``test_y``, if given; for the loss curves), γ₁, γ₂,
    the steps skipped, the median and largest gradient norm, and the elapsed seconds.
    ``progress`` shows a bar; ``on_epoch(row)`` is called after each epoch. With ``kl_warmup`` > 0
    the KL terms of the training loss are scaled by β rising linearly from 0 to 1 over that many
    epochs (recorded as ``kl_scale``); the test −ELBO is never scaled. With ``amp`` the training
    loss runs under bfloat16 autocast (no loss scaling needed); the test −ELBO stays float32.
    ``lr_schedule`` sets the learning rate of each step from the steps done out of ``epochs`` epochs'
    (``training.warmup.lr_factor``).

    Safeguards:
    - a step whose loss or gradient norm is not finite, or is absurd (``Progress.absurd``: orders of
      magnitude above the recent good steps), is skipped (the parameters and Adam's moments are not
      touched) and counted; after ``max_bad_steps`` in a row ``NonFiniteSteps`` is raised, no
      checkpoint being written, so the last one on disk is the last good state. So is an epoch
      whose parameters give a non-finite or absurd test −ELBO (``Progress.broken``).
      ``clip_norm`` clips the gradient's global norm.
    - ``checkpoint(state)`` is called with everything needed to continue (optimizer, ``Progress``,
      random-number states) before the first step, after every epoch, every ``checkpoint_every``
      steps, and when ``should_stop()`` turns true (then ``Interrupted`` is raised).
      ``resume=state`` continues from such a state: the same steps, on the same batches, with the
      same random draws as the uninterrupted run.

    Data-parallel training: ``ranks`` (``training.distributed``) sums the epoch's loss
    over the processes and makes them agree on skipping a step and on stopping; ``order(epoch)``
    gives this process's batches (default: all images in a random order); the state handed to
    ``checkpoint`` then holds every process's progress and random streams under ``"ranks"``.
    """
    params = list(nn.ModuleList([model, guide]).parameters())  # each once, shared ones too
    optimizer = adam(params, lr)
    device = device or data.train_values.device
    ranks = ranks or SingleProcess()
    order = order or (lambda epoch: epoch_order(data, batch_size))
    state = Progress()
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = lr  # a resumed run may change its learning rate
        own = resume["ranks"][ranks.rank] if ranks.world_size > 1 else resume
        state = Progress.from_dict(own["progress"], data.train_values.device, device)
        set_rng_state(own["rng"])

    def save():
        states = ranks.gather({"progress": state.to_dict(), "rng": rng_state()})
        if checkpoint is not None:
            checkpoint({"optimizer": optimizer.state_dict(), **states[0],
                        **({"ranks": states} if ranks.world_size > 1 else {})})

    if resume is None:
        save()  # a run killed in its first epoch resumes from its start
    start, before = time.perf_counter(), state.seconds
    bar = tqdm(range(state.epoch + 1, epochs + 1), desc="training", unit="epoch", disable=not progress,
               leave=False, initial=state.epoch, total=epochs)
    for epoch in bar:
        if state.order is None:
            state.start_epoch(order(epoch), device)
        steps = len(state.order)  # this process's share of the epoch
        batches = epoch_batches(data, state.order[state.step:], device)
        for i, (index, x, y) in enumerate(batches, start=state.step):
            beta = kl_scale(epoch, (i + 1) / steps, kl_warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(lr_schedule, state.steps_done, epochs * steps)
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(x, y, kl_scale=beta, index=index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            loss = loss.detach()
            norm = gradient_norm(params, clip_norm)
            good = torch.isfinite(loss) & torch.isfinite(norm) & ~state.absurd(loss / ranks.world_size / len(index),
                                                                                   norm)
            good, stop = ranks.agree(good, should_stop is not None and should_stop())  # one sync per step
            if good:
                optimizer.step()
                state.good_step(loss / ranks.world_size, len(index), norm)  # DistributedELBO scales by the processes
            else:
                state.bad_step()
                if state.in_a_row >= max_bad_steps:
                    raise NonFiniteSteps(f"{state.in_a_row} steps in a row had a non-finite or absurd loss or "
                                         f"gradient (epoch {epoch}, step {i + 1} of {steps})", state)
            state.step, state.steps_done = i + 1, state.steps_done + 1
            state.seconds = before + time.perf_counter() - start
            if stop:
                save()
                raise Interrupted(f"stopped at epoch {epoch}, step {i + 1} of {steps}", state)
            if checkpoint_every and state.steps_done % checkpoint_every == 0:
                save()
        images = ranks.count(state.images)
        row = {"epoch": epoch, "train_loss": ranks.sum(state.total).item() / max(images, 1),
               "kl_scale": kl_scale(epoch, 1.0, kl_warmup),
               "skipped_steps": state.skipped, **state.gradient_norms()}
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
        if on_epoch is not None:
            on_epoch(row)
    bar.close()
    return state.history
