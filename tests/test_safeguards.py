"""Numerical faults: a non-finite step never reaches the parameters; gradient clipping."""

import itertools

import pyro
import pytest
import torch
from conftest import build
from torch import nn

from training.checkpoint import RunCheckpoints, load_checkpoint
from training.loop import Callbacks, TrainingOptions, gradient_norm, train
from training.objectives import make_objective


class Tapped(nn.Module):
    """``objective`` whose calls, numbered from 1, go through ``tap(call, objective, x, y, **options)``: a
    test's way to poison a batch, blow up a loss or record the parameters as each step finds them."""

    def __init__(self, objective: nn.Module, tap):
        super().__init__()
        self.objective, self.tap, self.calls = objective, tap, itertools.count(1)

    def forward(self, x, y=None, **options):
        return self.tap(next(self.calls), self.objective, x, y, **options)


def poisoned(objective, bad_calls, seen):
    """``objective`` with a NaN pixel in the batch of each call numbered in ``bad_calls``; records the
    parameters as each call finds them in ``seen``."""

    def tap(call, objective, x, y=None, **options):
        seen[call] = [p.detach().clone() for p in objective.parameters()]
        if call in bad_calls:
            x = x.clone()
            x[0, 0, 0, 0] = float("nan")
        return objective(x, y, **options)
    return Tapped(objective, tap)


@pytest.mark.filterwarnings("ignore:Encountered NaN")  # Pyro's warning on each poisoned step
def test_a_nan_batch_is_skipped_counted_and_never_reaches_the_parameters_or_the_checkpoint(digits, tmp_path):
    pyro.enable_validation(False)  # as run.py trains: with it, the NaN would raise in a distribution's checks
    srvae, guide = build()
    params = [*srvae.parameters(), *guide.parameters()]
    seen = {}
    loss = poisoned(make_objective("pyro", srvae, guide), {3, 30}, seen)
    checkpoints = RunCheckpoints(tmp_path, srvae, guide, {"seed": 0})
    history = train(srvae, guide, digits, loss, TrainingOptions(epochs=2), Callbacks(checkpoint=checkpoints))
    steps = len(seen) // 2  # 23 per epoch
    assert [row["skipped_steps"] for row in history] == [1, 1] and steps == 23
    for bad in (3, 30):  # the step after a skipped one finds the parameters exactly as the skipped one did
        assert all(torch.equal(a, b) for a, b in zip(seen[bad], seen[bad + 1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(seen[4], seen[5], strict=True))  # good steps do move them
    assert all(torch.isfinite(p).all() for p in params)
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in history)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["training"]["progress"]["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in saved["srvae"].values())
    moments = [s[key] for s in saved["training"]["optimizer"]["state"].values() for key in ("exp_avg", "exp_avg_sq")]
    assert moments and all(torch.isfinite(m).all() for m in moments)  # Adam's moments never saw a NaN gradient


def test_gradient_clipping_bounds_the_global_norm_and_reports_the_norm_before_it():
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]
    params[0].grad = torch.tensor([3.0, 0.0, 0.0])
    params[1].grad = torch.tensor([[0.0, 4.0], [0.0, 0.0]])
    assert gradient_norm(params, None).item() == 5.0 and params[0].grad[0].item() == 3.0  # no clipping: untouched
    assert gradient_norm(params, 1.0).item() == 5.0
    clipped = torch.cat([p.grad.flatten() for p in params])
    assert abs(clipped.norm().item() - 1.0) < 1e-6 and torch.allclose(clipped[:1], torch.tensor([0.6]))


def test_the_spike_limit_is_k_times_the_recent_median_norm_and_never_above_a_fixed_clip():
    from training.progress import Progress

    state = Progress()
    state.start_epoch([], "cpu")
    assert state.clip_limit(None, 4.0) is None and state.clip_limit(7.0, 4.0) == 7.0  # nothing to judge by yet
    for norm in range(1, 22):  # 21 good steps, norms 1 … 21: median 11
        state.good_step(torch.tensor(-64.0), 64, torch.tensor(float(norm)))
    assert state.clip_limit(None, 4.0).item() == 44.0
    assert state.clip_limit(30.0, 4.0).item() == 30.0 and state.clip_limit(100.0, 4.0).item() == 44.0
    assert state.clip_limit(None, 0.0) is None and state.clip_limit(5.0, None) == 5.0  # 0 or None: off


def test_a_step_whose_gradient_spikes_is_clipped_to_k_times_the_recent_median_and_counted(digits, monkeypatch):
    """Step 30's gradient is blown up 10⁴ times while its loss stays as it was (not absurd, so not
    skipped): the step is taken with its gradient scaled down to 4 × the median norm of the steps before."""
    import training.loop

    srvae, guide = build()
    seen = []

    def recorded(params, limit):
        norm = gradient_norm(params, limit)
        after = torch.cat([p.grad.flatten() for p in params if p.grad is not None]).norm()
        seen.append((norm.item(), after.item(), None if limit is None else float(limit)))
        return norm

    def spike(call, objective, x, y=None, **options):
        loss = objective(x, y, **options)
        return loss + (1e4 - 1) * (loss - loss.detach()) if call == 30 else loss  # the same value, 10⁴ × its gradient

    monkeypatch.setattr(training.loop, "gradient_norm", recorded)
    history = train(srvae, guide, digits, Tapped(make_objective("pyro", srvae, guide), spike),
                    TrainingOptions(epochs=2, spike_clip=4.0))
    norm, after, limit = seen[29]
    recent = torch.tensor([before for before, _, _ in seen[:29]])  # the good steps before: fewer than RECENT_STEPS
    assert limit == pytest.approx(4.0 * recent.median().item(), rel=1e-6)
    assert norm > 1e3 * limit and after == pytest.approx(limit, rel=1e-4)
    assert [row["skipped_steps"] for row in history] == [0, 0] and history[1]["clipped_steps"] >= 1
    assert all(limit is None for _, _, limit in seen[:20])  # judged once 20 good steps are known


def test_history_records_each_epochs_median_and_largest_gradient_norm(digits, monkeypatch):
    """The loop's own norms of the good steps, before clipping: their median and maximum per epoch."""
    import training.loop

    seen = []

    def recorded(params, clip_norm):
        norm = gradient_norm(params, clip_norm)
        seen.append(norm.item())
        return norm

    monkeypatch.setattr(training.loop, "gradient_norm", recorded)
    srvae, guide = build()
    history = train(srvae, guide, digits, make_objective("pyro", srvae, guide),
                    TrainingOptions(epochs=2, batch_size=256, clip_norm=1.0))
    steps = len(seen) // 2
    assert len(seen) == 2 * steps == 12
    for row, norms in zip(history, (seen[:steps], seen[steps:]), strict=True):
        norms = torch.tensor(norms, dtype=torch.float64)
        assert row["grad_norm_median"] == norms.median().item() and row["grad_norm_max"] == norms.max().item()
        assert row["grad_norm_max"] > 1.0  # norms before clipping to 1


def test_a_finite_but_absurd_step_is_judged_against_the_recent_good_steps():
    from training.progress import Progress

    state = Progress()
    state.start_epoch([], "cpu")
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        state.good_step(torch.tensor(64 * (-100.0 + torch.randn((), generator=generator).item())), 64,
                        torch.tensor(10.0 + torch.rand((), generator=generator).item()))
    assert not state.absurd(torch.tensor(-90.0), torch.tensor(50.0))  # worse, but not orders of magnitude
    assert state.absurd(torch.tensor(1e6), torch.tensor(10.0))  # the loss of a breakdown
    assert not state.absurd(torch.tensor(-100.0), torch.tensor(1e4))  # a large gradient alone is not judged
    assert state.typical_norm() == pytest.approx(10.5, abs=0.5)
    fresh = Progress()
    assert not fresh.absurd(torch.tensor(1e30), torch.tensor(1e30))  # nothing to judge by yet


def test_an_absurd_step_is_skipped_and_never_reaches_the_parameters(digits):
    """The loss of step 30 blown up 10⁶ times (finite): skipped like a NaN step, counted, the run goes on."""
    srvae, guide = build()
    seen = {}

    def tap(call, objective, x, y=None, **options):
        seen[call] = [p.detach().clone() for p in objective.parameters()]
        return objective(x, y, **options) * (1e6 if call == 30 else 1.0)

    history = train(srvae, guide, digits, Tapped(make_objective("pyro", srvae, guide), tap), TrainingOptions(epochs=2))
    assert [row["skipped_steps"] for row in history] == [0, 1]
    assert all(torch.equal(a, b) for a, b in zip(seen[30], seen[31], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(seen[31], seen[32], strict=True))


def test_an_epoch_whose_test_elbo_breaks_down_is_judged_against_the_finished_epochs():
    from training.progress import Progress

    state = Progress()
    assert state.broken(float("inf")) and state.broken(float("nan"))
    assert not state.broken(1e30)  # nothing to judge by yet
    state.history = [{"epoch": e, "test_loss": loss} for e, loss in enumerate((-100.0, -101.0, -99.0), start=1)]
    assert not state.broken(-80.0)  # worse, but not orders of magnitude
    assert state.broken(1e6)


def test_an_epoch_that_ruins_the_parameters_is_not_checkpointed(digits):
    """The last step of epoch 3 is ordinary, but after it σ₁ is infinite: the run stops there, and the
    last checkpoint written is the one after epoch 2."""
    from training.loop import NonFiniteSteps

    srvae, guide = build()
    steps = -(-len(digits.train_values) // 64)

    def tap(call, objective, x, y=None, **options):
        value = objective(x, y, **options)
        if call == 3 * steps:
            with torch.no_grad():
                srvae.p_x_given_yz.rho.fill_(200.0)  # γ₁ = exp(200) = inf in float32; this step's loss is finite
        return value

    saved = []
    with pytest.raises(NonFiniteSteps, match="after epoch 3 the test −ELBO is inf per image"):
        train(srvae, guide, digits, Tapped(make_objective("pyro", srvae, guide), tap),
              TrainingOptions(epochs=5, monitor_test=True),
              Callbacks(checkpoint=lambda state: saved.append(state["progress"]["epoch"])))
    assert saved == [0, 1, 2]
