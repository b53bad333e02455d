"""SRVAE-Pyro: train the super-resolution VAE on a data set, evaluate it on the test split,
write figures, metrics and a checkpoint, and print a summary.

    python run.py --guide amortized

Exit status: 0 done; 2 bad input (one line on stderr, nothing written); 3 training stopped by
non-finite steps (the last good checkpoint kept); 130 or 143 stopped by Ctrl-C or SIGTERM after
writing a checkpoint (resume with --resume).
"""

import sys

from experiment.cli import parse


def main(argv=None) -> int:
    """Parse the command line into one configuration and run its mode: train (from the start, or
    continuing a run with --resume), or evaluate a checkpoint (--evaluate)."""
    request = parse(argv, description=__doc__)
    if request.evaluate is not None and request.resume is None:
        from experiment.evaluate import evaluate

        return evaluate(request)
    from experiment.train import train

    return train(request)


if __name__ == "__main__":
    sys.exit(main())
