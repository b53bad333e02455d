"""Progress of the evaluation on stderr, stage by stage, in the style of training's: a progress bar on
a terminal; in logs, a line as each stage starts and at every tenth of its work, with the time spent
and an estimate of the time left."""

import sys
import time

from tqdm import tqdm

QUIET_SECONDS = 2.0  # the least time between two progress lines of a stage in logs


def clock(seconds: float) -> str:
    """Seconds as '42 s', '3 min 05 s' or '1 h 02 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


class Stage:
    """One stage's count of work done out of ``total`` ``unit``; called with the count done so far
    (and, where the stage learns how much it needs as it goes, a new total)."""

    def __init__(self, stages: "Stages", name: str, total: int, unit: str):
        self.stages, self.name, self.total, self.unit = stages, name, total, unit
        self.start, self.done, self.next_tenth, self.last_line = time.perf_counter(), 0, 1, 0.0
        self.bar = (tqdm(total=total, desc=f"  {name}", unit=unit.split()[0], leave=False, file=sys.stderr)
                    if stages.interactive else None)

    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None and total != self.total:
            self.total = total
            if self.bar is not None:
                self.bar.total = total
        if self.bar is not None:
            self.bar.update(done - self.done)
        self.done = done
        if self.bar is None and self.total and 10 * done >= self.next_tenth * self.total:
            spent = time.perf_counter() - self.start
            if done < self.total and spent - self.last_line < QUIET_SECONDS:
                return  # a quick stage: no line at every tenth
            self.last_line = spent
            left = spent * (self.total - done) / done
            self.stages.line(f"{self.name}: {done}/{self.total} {self.unit}"
                             + (f", about {clock(left)} left" if done < self.total else f" in {clock(spent)}"))
            self.next_tenth = 10 * done // self.total + 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Stages:
    """The evaluation's stages: ``stages(name, total, unit)`` announces one and returns its ``Stage``
    (the previous one closed); ``interactive`` (default: stderr is a terminal) chooses bars over lines."""

    def __init__(self, interactive: bool | None = None):
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.start, self.current = time.perf_counter(), None

    def __call__(self, name: str, total: int = 0, unit: str = "images") -> Stage:
        self.close()
        self.line(f"{name} …")
        self.current = Stage(self, name, total, unit)
        return self.current

    def line(self, text: str) -> None:
        """``text`` after the seconds spent, above the current bar if there is one."""
        text = f"  {time.perf_counter() - self.start:7.1f} s  {text}"
        if self.current is not None and self.current.bar is not None:
            self.current.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None

    def done(self) -> None:
        self.close()
        self.line(f"evaluation done in {clock(time.perf_counter() - self.start)}")
