"""The train mode: train the model on a data set (from the start, or continuing a run from its
checkpoint), then evaluate it and write everything (SPEC §7, 'Train' and 'Evaluate')."""

import sys
from pathlib import Path

from experiment import checks
from experiment.checks import UsageError
from experiment.cli import Request
from experiment.outputs import progress_lines, write_and_summarise
from experiment.processes import run_mode
from experiment.saved import check_resumed_data, launch, open_resume
from training.provenance import provenance


def train(request: Request) -> int:
    """Train and evaluate the run ``request`` describes (or continue the one in ``request.resume``);
    under torchrun every process trains on its shards. Returns the exit status."""

    def prepare(ranks):
        config, resume = request.config, None
        if request.resume is not None:
            if request.evaluate is not None:
                raise UsageError(f"--resume {request.resume}: a resumed run writes into its own folder and trains; "
                                 "drop --evaluate")
            resume, config = open_resume(config, request.resume, request.given)
        checks.check(config)
        checks.check_distributed(config, ranks)
        device = checks.resolve_device(config.device) if ranks.world_size == 1 else str(ranks.device)
        # a resumed run's configuration holds its saved normalization, image shape and number of images
        data = checks.load_data(config, normalization=config.normalization)
        if resume is not None:
            check_resumed_data(config, data)
        out = Path(config.out or Path("runs") / f"{config.dataset}-{config.model}-{config.guide}-{config.prior}")
        config = config.resolved(data, device, out, ranks.world_size, provenance())
        checks.check_data(config, data)
        data = data.with_options(augment=config.augment)  # the default follows the images' shape
        if ranks.rank == 0:  # the one process that writes
            checks.prepare_out(out)
        return config, data, resume

    return run_mode(request.config.device, prepare,
                    lambda ranks, prepared: train_and_evaluate(*prepared, ranks, evaluate=not request.train_only),
                    lambda prepared: "" if prepared is None else
                    f"; the trained model is in {prepared[0].out}/checkpoint.pt: python run.py --resume "
                    f"{prepared[0].out} evaluates it")


def train_and_evaluate(config, data, resume: dict | None, ranks, evaluate: bool = True) -> int:
    """Train (from the start, or from the checkpoint ``resume``), then evaluate and write everything
    (or, without ``evaluate``, stop at the trained checkpoint).
    Under torchrun (``ranks`` of several processes) every process trains on its shards; the processes
    share the importance-weighted evaluation, process 0 does the rest and alone writes and prints,
    and its metrics are sent to all."""
    import pyro

    from evaluation.loglik import importance_weighted_log_likelihood
    from evaluation.report import evaluate_run
    from training.build import build_model_and_guide
    from training.checkpoint import CheckpointError, RunCheckpoints, load_states, write_json
    from training.distributed import DataParallelObjective, shard_order, sharded
    from training.interrupt import stop_on_signals
    from training.loop import Callbacks, Interrupted, NonFiniteSteps, TrainingOptions, train
    from training.objectives import make_objective

    writer, out, c = ranks.rank == 0, Path(config.out), config
    data = checks.place(data, c.device)
    pyro.set_rng_seed(c.seed)
    model, guide = build_model_and_guide(c, data.image_shape, c.device)
    if resume is not None:
        try:
            load_states(resume, model, guide)
        except CheckpointError as error:
            raise UsageError(f"--resume {out}: checkpoint.pt: {error}") from None
    objective = make_objective(c.objective, model, guide, c.mixture_kl, c.particles, c.nll_beta)
    order = None
    if ranks.world_size > 1:
        pyro.set_rng_seed(c.seed + ranks.rank)  # the same initial model, but each process its own draws
        objective = DataParallelObjective(objective, ranks)
        order = shard_order(data, c.batch_size, ranks, c.seed)

    checkpoints = RunCheckpoints(out, model, guide, c.to_dict()) if writer else None
    if writer:
        write_json(out / "config.json", c.to_dict())
    interactive = writer and sys.stderr.isatty()
    options = TrainingOptions(c.epochs, c.batch_size, c.lr, c.lr_schedule, c.kl_warmup, c.amp, c.clip_norm,
                              c.spike_clip, c.max_bad_steps, c.checkpoint_every, c.device, monitor_test=True,
                              ranks=ranks, order=order)
    try:
        with stop_on_signals() as stop_requested:
            callbacks = Callbacks(interactive, progress_lines(c.epochs) if writer and not interactive else None,
                                  checkpoints, stop_requested)
            history = train(model, guide, data, objective, options, callbacks,
                            resume=None if resume is None else resume["training"])
    except Interrupted as stop:
        if writer:
            print(f"run.py: interrupted: {stop}; {out}/checkpoint.pt holds that state: continue with "
                  f"{launch(ranks.world_size)} --resume {out}", file=sys.stderr)
        return stop_requested.exit_status
    except NonFiniteSteps as stop:
        if writer:
            print(f"run.py: error: training stopped: {stop}; probable causes: a learning rate too high (--lr "
                  f"{c.lr}), a γ floor too low (--gamma-min {c.gamma_min}) or non-finite pixels; "
                  f"{out}/checkpoint.pt keeps the last good state, written before those steps (after epoch "
                  f"{stop.progress.epoch} or later): resume from it with {launch(ranks.world_size)} --resume {out} "
                  f"--lr {c.lr / 10:g}{clip_advice(stop.progress.typical_norm())}", file=sys.stderr)
        return 3
    seconds = history[-1]["seconds"] if history else 0.0
    if not evaluate:
        if writer:
            print(f"trained in {seconds:.0f} s; {out}/checkpoint.pt holds the model, not evaluated: "
                  f"{launch(ranks.world_size)} --resume {out} evaluates it", file=sys.stderr)
        return 0

    metrics = None
    if ranks.world_size == 1:
        print("evaluating on the test set …", file=sys.stderr, flush=True)
        metrics = {**evaluate_run(model, guide, data, c), "train_seconds": seconds}
    else:  # the IW estimate divided among the processes, the rest on process 0
        log_likelihood = sharded(importance_weighted_log_likelihood, ranks)
        if writer:
            print(f"evaluating on the test set ({ranks.world_size} processes share the IW estimate) …",
                  file=sys.stderr, flush=True)
            metrics = {**evaluate_run(model, guide, data, c, log_likelihood), "train_seconds": seconds,
                       "iw_processes": ranks.world_size}
        else:
            pyro.set_rng_seed(c.seed + ranks.rank)
            log_likelihood(model, guide, *data.test_pair(), num_samples=c.iw_samples)
    metrics = ranks.broadcast(metrics)  # every process returns the same numbers
    if writer:
        write_and_summarise(out, model, guide, data, c, history, metrics, checkpoints)
    return 0


def clip_advice(typical_norm: float) -> str:
    """', or --clip-norm C' with C twice the run's own median gradient norm (nothing before any): below
    the default --spike-clip's 4 ×, so that it changes something."""
    import math

    return "" if math.isnan(typical_norm) else f" or --clip-norm {2 * typical_norm:.2g}"
