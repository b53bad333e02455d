"""What both modes write and print at the end: config, history, metrics and checkpoint, the figures,
and the readable summary."""

import sys
from pathlib import Path

from evaluation.progress import clock
from experiment.config import RunConfig


def write_and_summarise(out: Path, model, guide, data, config: RunConfig, history: list[dict], metrics: dict,
                        checkpoints=None) -> list[str]:
    """The run's config, history and metrics (and, for a trained run, its final checkpoint, which can still
    be resumed), each written atomically; the figures; then the summary on stdout. Returns the files."""
    from evaluation.report import summary, write_figures
    from training.checkpoint import write_history, write_json

    write_json(out / "config.json", config.to_dict())
    written = ["config.json"]
    if checkpoints is not None:
        write_history(out / "history.csv", history)
        written.append("history.csv")
    write_json(out / "metrics.json", metrics)
    written.append("metrics.json")
    if checkpoints is not None:
        checkpoints.save(history=history, metrics=metrics)
        written.append("checkpoint.pt")
    written += write_figures(model, guide, data, config, history, metrics, out)
    print(summary(metrics, config, metrics.get("train_seconds", 0.0)))
    print(f"outputs in {out}/: {' '.join(written)}")
    return written


def progress_lines(epochs: int):
    """Without a terminal, a line after the first epoch (so a log is not silent for a tenth of the run) and
    at every tenth of the run instead of a progress bar, with the time left at the run's mean epoch time."""
    every = max(1, epochs // 10)

    def report(row):
        if row["epoch"] == 1 or row["epoch"] % every == 0 or row["epoch"] == epochs:
            test = f"test {row['test_loss']:9.2f}/image  " if "test_loss" in row else ""
            left = row["seconds"] / row["epoch"] * (epochs - row["epoch"])
            time_left = f", about {clock(left)} left" if row["epoch"] < epochs else ""
            print(f"epoch {row['epoch']:>5}/{epochs}  train −ELBO {row['train_loss']:9.2f}/image  "
                  f"{test}{row['seconds']:6.1f} s{time_left}", file=sys.stderr, flush=True)
    return report
