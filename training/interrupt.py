"""Ctrl-C, or a scheduler's SIGTERM: during training, finish the step, write a checkpoint, stop cleanly;
elsewhere, stop at once through the same clean-up paths as Ctrl-C (nothing half-written)."""

import signal
import sys
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Called, says whether a stop was asked for; ``signum`` is the signal that asked."""

    def __init__(self):
        self.signum = None

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def exit_status(self) -> int:
        """128 + the signal's number, the shell's convention (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + (self.signum or signal.SIGINT)


@contextmanager
def stop_on_signals():
    """Within the block, the first SIGINT or SIGTERM only records itself in the yielded
    ``StopRequest`` (the training loop checks it after every step); a second one acts at once, as
    it would without the block."""
    request = StopRequest()
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}

    def handler(signum, frame):
        request.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step (send it again to abort at once) …",
              file=sys.stderr, flush=True)
        for other in SIGNALS:
            signal.signal(other, previous[other])

    for signum in SIGNALS:
        signal.signal(signum, handler)
    try:
        yield request
    finally:
        for signum in SIGNALS:
            signal.signal(signum, previous[signum])


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would raise ``KeyboardInterrupt``, so that one clean-up path serves both."""


@contextmanager
def sigterm_as_interrupt():
    """Within the block SIGTERM raises ``Terminated`` instead of ending the process where it stands (the
    default), which would leave scratch files behind; the previous handler is restored after."""

    def handler(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
