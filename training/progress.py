"""Where a training run stands, as a checkpoint records it."""

import math
import statistics

import torch

RECENT_STEPS = 200  # the good steps whose losses and gradient norms judge a new step
JUDGED_AFTER = 20  # how many of them must be known before a step is judged
SPIKE = 100.0  # how far above those a step's loss must be to be absurd
SPIKE_CLIP = 4.0  # by default a step's gradient norm is clipped to this many times theirs
RECENT_EPOCHS = 20  # the finished epochs whose test −ELBO judges the next


class Progress:
    """The loop's position and running sums: ``epoch`` epochs done, ``step`` steps of the next one
    done, taken in the batch ``order`` drawn for it; the summed loss (``total``) and image count of
    its good steps, and their gradient norms (``norms``); steps skipped in it and in a row, and steps
    clipped in it (``clip_limit``); steps done and seconds spent in all; the history rows of the
    finished epochs; the loss per image and gradient norm of the last ``RECENT_STEPS`` good steps
    (``recent``, across epochs), which judge the next."""

    def __init__(self):
        self.epoch, self.step, self.order = 0, 0, None
        self.total, self.images, self.skipped, self.in_a_row, self.clipped = None, 0, 0, 0, 0
        self.norms = []
        self.steps_done, self.seconds, self.history = 0, 0.0, []
        self.recent = None

    def absurd(self, loss_per_image: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        """Whether a finite step is still not good (a tensor, so no sync): its loss per image more than
        ``SPIKE`` × (|median| + median absolute deviation) above the median of the recent good steps.
        A breakdown starts as such a step: its loss, finite but orders of magnitude off, would move
        the parameters and Adam's moments to where no later step recovers. The gradient norm is not
        judged: it legitimately grows by orders of magnitude within an epoch as a per-pixel σ
        sharpens, and Adam's step is bounded whatever its size. Judged once ``JUDGED_AFTER`` good steps are known."""
        if not self.judges():
            return torch.zeros((), dtype=torch.bool, device=norm.device)
        median = self.recent[:, 0].median()
        spread = (self.recent[:, 0] - median).abs().median()
        return loss_per_image - median > SPIKE * (median.abs() + spread)

    def broken(self, test_loss: float) -> bool:
        """Whether the parameters an epoch ended with broke down: their test −ELBO per image is not
        finite, or is absurd against the finished epochs' (judged as ``absurd`` judges a step, once
        three are known). A step's loss is judged before its update; this judges what the updates
        made, which a run of finite, ordinary-looking steps can still ruin."""
        if not math.isfinite(test_loss):
            return True
        before = [row["test_loss"] for row in self.history[-RECENT_EPOCHS:] if "test_loss" in row]
        if len(before) < 3:
            return False
        median = statistics.median(before)
        spread = statistics.median(abs(loss - median) for loss in before)
        return test_loss - median > SPIKE * (abs(median) + spread)

    def judges(self) -> bool:
        """Whether enough recent good steps are known to judge the next (``JUDGED_AFTER``)."""
        return self.recent is not None and len(self.recent) >= JUDGED_AFTER

    def clip_limit(self, clip_norm: float | None, spike_clip: float | None) -> torch.Tensor | float | None:
        """The norm the next step's gradient is clipped to: ``clip_norm``, and ``spike_clip`` × the median
        gradient norm of the recent good steps (once ``JUDGED_AFTER`` are known), whichever is lower; None for
        neither. Adam's update does not depend on a constant scale of the gradients, so clipping at a
        multiple of their running median leaves ordinary steps, and a norm that grows over epochs as a
        per-pixel σ sharpens, alone: it only stops one outlying step from filling Adam's first moment
        with a direction and its second with a size that the following steps then follow for tens of
        steps, the start of a training setback. A tensor (no sync)."""
        if not spike_clip or not self.judges():
            return clip_norm
        limit = spike_clip * self.recent[:, 1].median().float()
        return limit if clip_norm is None else limit.clamp(max=clip_norm)

    def typical_norm(self) -> float:
        """The median gradient norm of the recent good steps (nan before any)."""
        return float("nan") if self.recent is None else self.recent[:, 1].median().item()

    def start_epoch(self, order: list, device) -> None:
        self.order, self.step = order, 0
        self.total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync per step
        self.images, self.skipped, self.clipped, self.norms = 0, 0, 0, []

    def good_step(self, loss: torch.Tensor, images: int, norm: torch.Tensor, clipped=False) -> None:
        """Counts a step that updated the parameters: its loss, its gradient ``norm`` before clipping, and
        whether it was ``clipped`` (a tensor or a bool, summed without a sync)."""
        self.total += loss
        self.clipped = self.clipped + clipped
        self.norms.append(norm)  # kept on the device: no sync per step
        self.images += images
        self.in_a_row = 0
        step = torch.stack([loss.double() / images, norm.double()])[None]
        self.recent = step if self.recent is None else torch.cat([self.recent, step])[-RECENT_STEPS:]

    def bad_step(self) -> None:
        self.skipped += 1
        self.in_a_row += 1

    def gradient_norms(self) -> dict:
        """The median and the largest gradient norm of the epoch's good steps (before clipping): a
        breakdown shows as a largest norm orders of magnitude above the median."""
        if not self.norms:
            return {"grad_norm_median": float("nan"), "grad_norm_max": float("nan")}
        norms = torch.stack(self.norms).double().cpu()
        return {"grad_norm_median": norms.median().item(), "grad_norm_max": norms.max().item()}

    def end_epoch(self, epoch: int, row: dict) -> None:
        self.epoch, self.step, self.order, self.total, self.norms = epoch, 0, None, None, []
        self.history.append(row)

    def to_dict(self) -> dict:
        """Tensors and plain values only (read back with ``torch.load(weights_only=True)``)."""
        return {"epoch": self.epoch, "step": self.step, "steps_done": self.steps_done, "seconds": self.seconds,
                "order": None if self.order is None else [index.cpu() for index in self.order],
                "total": None if self.total is None else self.total.cpu(), "images": self.images,
                "skipped": self.skipped, "clipped": int(self.clipped), "in_a_row": self.in_a_row,
                "history": list(self.history),
                "norms": torch.stack(self.norms).cpu() if self.norms else torch.zeros(0, device="cpu"),
                "recent": None if self.recent is None else self.recent.cpu()}

    @classmethod
    def from_dict(cls, saved: dict, data_device, device) -> "Progress":
        """The saved progress: its batch order on the data's device (where ``epoch_order`` draws it),
        its loss sum on the training ``device``."""
        state = cls()
        for key in ("epoch", "step", "steps_done", "seconds", "images", "skipped", "in_a_row"):
            setattr(state, key, saved[key])
        state.clipped = saved.get("clipped", 0)  # absent before steps were clipped by default
        state.history = list(saved["history"])
        if saved.get("recent") is not None:  # absent before absurd steps were judged
            state.recent = saved["recent"].to(device)
        if saved["order"] is not None:
            state.order = [index.to(data_device) for index in saved["order"]]
            state.total = saved["total"].to(device)
            if "norms" in saved:  # absent before the gradient-norm columns existed
                state.norms = list(saved["norms"].to(device))
        return state
