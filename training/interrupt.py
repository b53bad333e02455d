"""Ctrl-C during training (issue 7): finish the step, write a checkpoint, stop cleanly."""

import signal
import sys
from contextlib import contextmanager


@contextmanager
def stop_on_sigint():
    """Within the block, the first SIGINT only sets a flag, which the yielded function reads (the
    training loop checks it after every step); a second SIGINT interrupts at once, as usual."""
    requested = []

    def handler(signum, frame):
        requested.append(signum)
        print("\nstopping after this step (Ctrl-C again to abort at once) …", file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(requested)
    finally:
        signal.signal(signal.SIGINT, previous)
