"""Progress lines of long builds: a picklable line sink and the sink of the running stage build, if any.

A stage build (pre-training the bases, training the tiny text-to-image model) can run minutes in a Ray task or a
spawned process whose console nobody sees. When its runner names a progress file (`stagestore.progress_file`; the
sweep engine does, and relays the newest line to its live view), `build_progress()` gives a sink that appends
there, and `Throttle` keeps a fast loop from writing a line per step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stagestore import progress_file


def format_seconds(seconds: float) -> str:
    """`95` -> `1m35s`, `3725` -> `1h02m`; `?` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


@dataclass(frozen=True)
class LineFile:
    """A picklable progress sink: appends each line to `path` (a training worker on another process or node
    writes where the caller reads)."""

    path: str

    def __call__(self, line: str) -> None:
        """Append `line` and a newline."""
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(line + "\n")


def build_progress() -> LineFile | None:
    """The sink of the stage build running in this process (or its parent's), or None outside one."""
    path = progress_file()
    return LineFile(str(path)) if path is not None else None


@dataclass
class Throttle:
    """True at most once every `every_s` seconds (and on the first call): when a loop should report."""

    every_s: float = 15.0
    clock: Callable[[], float] = time.perf_counter
    _last: float = field(default=-math.inf, init=False)

    def due(self) -> bool:
        """Whether `every_s` seconds have passed since the last time this returned True."""
        now = self.clock()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True
