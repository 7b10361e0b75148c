"""What the user sees: a compact live view on the console, and everything else in the sweep's log file.

`output_to_log` points the process's stdout and stderr (file descriptors 1 and 2, so Ray's worker output, Tune's
tables and library warnings follow) at `<storage>/<sweep id>/sweep.log` and hands back a stream on the real
console; `LiveView` writes one line per event there: counts of pending / running / done / failed / reused
trials, elapsed time, each trial's headline result as it lands, then the final tables.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sweeps.engine.callbacks import SweepCallback, SweepStart
from sweeps.engine.tables import print_table

if TYPE_CHECKING:  # pragma: no cover
    from sweeps.engine.outcomes import Report, SweepResult, TrialOutcome


@contextlib.contextmanager
def output_to_log(log_path: Path, capture: bool = True) -> Iterator[TextIO]:
    """Send fds 1 and 2 to `log_path` for the duration; yield a text stream on the original stdout."""
    if not capture:
        yield sys.stdout
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    console = os.fdopen(os.dup(saved_out), "w", buffering=1)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    try:
        yield console
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, log_fd):
            os.close(fd)
        console.close()


def default_headline(outcome: TrialOutcome) -> str:
    """The first few summary numbers of a trial, `name value`."""
    numbers = [(k, v) for k, v in outcome.metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    return "  ".join(f"{k} {v:.4g}" for k, v in numbers[:3])


class LiveView(SweepCallback):
    """The console's live view of a sweep (see module doc)."""

    def __init__(
        self,
        stream: TextIO,
        headline: Callable[[TrialOutcome], str] | None = None,
        browse_hint: str = "",
        quiet: bool = False,
    ) -> None:
        self.stream = stream
        self.headline = headline or default_headline
        self.browse_hint = browse_hint
        self.quiet = quiet
        self.start_time = time.perf_counter()
        self.total = 0
        self.labels: dict[str, str] = {}
        self.running: set[str] = set()
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.reused: set[str] = set()

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        elapsed = int(time.perf_counter() - self.start_time)
        self.stream.write(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}\n")
        self.stream.flush()

    def _counts(self) -> str:
        finished = self.done | self.failed
        pending = self.total - len(finished) - len(self.running - finished)
        return (
            f"{len(self.done)}/{self.total} done, {len(self.running - finished)} running, {pending} pending"
            + (f", {len(self.failed)} failed" if self.failed else "")
            + (f", {len(self.reused)} reused" if self.reused else "")
        )

    def on_sweep_start(self, start: SweepStart) -> None:
        self.total = len(start.trials)
        self.labels = dict(start.labels)
        todo = self.total - len(start.complete)
        self._line(
            f"sweep {start.sweep_id}: {self.total} trial(s), {len(start.complete)} already recorded, {todo} to run"
        )
        if start.log_path:
            self._line(f"log (Ray, workers, stages): {start.log_path}")

    def on_progress(self, line: str) -> None:
        self._line(line)

    def on_trial_start(self, trial_id: str) -> None:
        self.running.add(trial_id)

    def on_trial_reused(self, outcome: TrialOutcome) -> None:
        self.reused.add(outcome.trial_id)
        self.done.add(outcome.trial_id)

    def on_trial_trained(self, outcome: TrialOutcome) -> None:
        self.running.add(outcome.trial_id)
        wall = outcome.metrics.get("train_wall_s")
        trained = f"trained in {wall:.0f} s, " if isinstance(wall, int | float) else ""
        self._line(f"{outcome.label}: {trained}evaluating ({self._counts()})")

    def on_trial_complete(self, outcome: TrialOutcome) -> None:
        self.done.add(outcome.trial_id)
        self.running.discard(outcome.trial_id)
        self._line(f"{outcome.label}: {self.headline(outcome)} ({self._counts()})")

    def on_trial_failed(self, outcome: TrialOutcome) -> None:
        self.failed.add(outcome.trial_id)
        self.running.discard(outcome.trial_id)
        last = (outcome.error or "failed").strip().splitlines()[-1:] or ["failed"]
        self._line(f"FAILED {outcome.label}: {last[0][:200]} ({self._counts()})")

    def on_report(self, report: Report) -> None:
        for name in report.console:
            caption = report.captions.get(name, "")
            table = report.display.get(name, report.tables[name])
            print_table(table, title=f"{name}:" + (f" {caption}" if caption else ""), file=self.stream)

    def on_sweep_end(self, result: SweepResult) -> None:
        failed = [o for o in result.outcomes if o.error]
        summary = (
            f"sweep {result.sweep_id}: {len(result.outcomes) - len(failed)} trial(s) complete "
            f"({len(result.trained)} trained now, {len(result.reused)} reused), {len(failed)} failed, "
            f"{result.wall_s:.0f} s"
        )
        self.quiet = False
        self.stream.write("\n")
        self._line(summary)
        if failed:
            self._line("failed trials: " + ", ".join(o.label or o.trial_id for o in failed) + "; rerun to retry")
            if result.log_path:
                self._line(f"details: {result.log_path}")
        if self.browse_hint:
            self._line(self.browse_hint)
