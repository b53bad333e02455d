"""The evaluate mode: the trained model of a checkpoint, measured afresh on a test set (no training)."""

import sys
from pathlib import Path

from experiment import checks
from experiment.cli import Request
from experiment.outputs import write_and_summarise
from experiment.processes import run_mode
from experiment.saved import open_checkpoint


def evaluate(request: Request) -> int:
    """Evaluate the checkpoint ``request.evaluate`` with the run's configuration and this command line's
    evaluation settings; write metrics and figures into ``--out`` (default: ``evaluation/`` beside the
    checkpoint). Returns the exit status."""

    def prepare(ranks):
        checks.check(request.config)
        checks.check_distributed(request.config, ranks, evaluating=True)
        device = checks.resolve_device(request.config.device)
        checkpoint, config, data, trained = open_checkpoint(request.config, request.evaluate, device,
                                                             request.given)
        out = Path(request.config.out or request.evaluate.parent / "evaluation")
        checks.prepare_out(out)
        return checkpoint, config.but(out=str(out)), data, trained

    return run_mode(request.config.device, prepare, lambda ranks, prepared: evaluate_checkpoint(*prepared))


def evaluate_checkpoint(checkpoint: dict, config, data, trained) -> int:
    from evaluation.report import evaluate_run

    model, guide = trained
    data = checks.place(data, config.device)
    print(f"evaluating {config.evaluated_checkpoint} on the {config.dataset} test set …", file=sys.stderr, flush=True)
    metrics = evaluate_run(model, guide, data, config)
    write_and_summarise(Path(config.out), model, guide, data, config, checkpoint.get("history") or [], metrics)
    return 0
