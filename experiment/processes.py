"""One process, or one of ``torchrun``'s: how a mode prepares (every check, in every process) and then
works, with one line and the right exit status for bad input, Ctrl-C and SIGTERM."""

import sys

from experiment.checks import UsageError


def open_ranks(device: str):
    """The process group of a ``torchrun`` launch (NCCL on GPUs, gloo on CPUs), else a single process."""
    from training.distributed import ProcessGroup, SingleProcess, launched_world_size

    if launched_world_size() == 1:
        return SingleProcess()
    import torch

    on_gpu = device != "cpu" and torch.cuda.is_available()
    return ProcessGroup("cuda" if on_gpu else "cpu")


def run_mode(device: str, prepare, work, interrupted_hint=lambda prepared: "", prog: str = "run.py") -> int:
    """``prepare(ranks)`` (the checks and loading, raising ``UsageError``), then ``work(ranks, prepared)``.
    Every process stops if any must, with one line saying why (status 2); Ctrl-C or SIGTERM outside training
    (which stops on its own) ends with status 130 or 143 and ``interrupted_hint``, after the clean-up of
    whatever was being written; ``prog`` names the command."""
    ranks = open_ranks(device)
    prepared, failure = None, None
    try:
        prepared = prepare(ranks)
    except UsageError as error:
        failure = str(error)
    failures = ranks.gather(failure)
    if any(failures):
        if ranks.rank == 0 and failure:
            print(f"{prog}: error: {failure}", file=sys.stderr)
        elif failure and not failures[0]:  # a refusal that process 0 did not share
            print(f"{prog}: error (process {ranks.rank}): {failure}", file=sys.stderr)
        ranks.close()
        return 2

    import pyro

    from training.interrupt import Terminated, sigterm_as_interrupt

    pyro.enable_validation(False)  # argument checks cost time in the hot loop; the tests run with them on
    try:
        with sigterm_as_interrupt():
            status = work(ranks, prepared)
    except UsageError as error:  # found once the modules are built (by every process), before any write
        if ranks.rank == 0:
            print(f"{prog}: error: {error}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        print(f"\n{prog}: {'stopped by SIGTERM' if terminated else 'interrupted'}{interrupted_hint(prepared)}",
              file=sys.stderr)
        ranks.close(wait=False)
        return 143 if terminated else 130
    except BaseException:
        ranks.close(wait=False)  # the other processes may be inside a collective: no barrier to wait at
        raise
    ranks.close()
    return status
