"""The recording protocol: what the driver tells its callbacks, in the driver process, as a sweep runs.

In the manner of Ray Tune's logger callbacks: MLflow (`recording.MLflowRecorder`) and the console's live view
(`console.LiveView`) are two callbacks; a sweep may add its own (`Sweep.callbacks`). Every hook has a default
that does nothing, so a callback overrides only what it needs. Trials and actors never call these: they return
plain data to the driver, which is the only writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from sweeps.engine.evaluation import Chunk, ChunkResult
    from sweeps.engine.grid import Trial
    from sweeps.engine.outcomes import Report, SweepResult, TrialOutcome
    from sweeps.engine.sweep import Sweep


@dataclass(frozen=True)
class SweepStart:
    """What a sweep is about to do: its id, trials (with labels), which are reused, where its log goes."""

    sweep: Sweep
    sweep_id: str
    trials: list[Trial]
    labels: dict[str, str]
    complete: list[str]  # trial ids already recorded by this sweep or reused from an earlier one
    log_path: str | None


class SweepCallback:
    """Base class of the driver's callbacks; override the hooks you need."""

    def on_sweep_start(self, start: SweepStart) -> None:
        """The sweep starts (after resume and reuse were resolved, before stages and trials)."""

    def on_progress(self, line: str) -> None:
        """A line of progress of a long step (a stage being built, a trial waiting for resources)."""

    def on_trial_start(self, trial_id: str) -> None:
        """A trial started training (in Tune) or, for a sweep without training, its evaluation was queued."""

    def on_trial_trained(self, outcome: TrialOutcome) -> None:
        """Training finished (or there is none); evaluation chunks are about to be submitted."""

    def on_chunk_done(self, outcome: TrialOutcome, chunk: Chunk, n_chunks: int, result: ChunkResult) -> None:
        """One evaluation chunk of a trial finished (recorded at once, so a rerun skips it)."""

    def on_trial_complete(self, outcome: TrialOutcome) -> None:
        """Every chunk is in; `outcome.rows` and the summary in `outcome.metrics` are final."""

    def on_trial_reused(self, outcome: TrialOutcome) -> None:
        """A trial's result was taken from an earlier sweep (`outcome.reused_from` names its run)."""

    def on_trial_failed(self, outcome: TrialOutcome) -> None:
        """Training or evaluation failed (`outcome.error`); a rerun of the same command retries it."""

    def on_report(self, report: Report) -> None:
        """The sweep's tables and figures are built."""

    def on_sweep_end(self, result: SweepResult) -> None:
        """The sweep ended (successfully or not); `result` holds every outcome."""


class ResumeSource:
    """Where a rerun finds what earlier runs recorded (the MLflow recorder is one)."""

    def completed(self, trials: list[Trial]) -> dict[str, TrialOutcome]:
        """Outcomes of the given trials already complete, from this sweep or (reused) from another."""
        return {}

    def finished_chunks(self, trial_id: str, digests: list[str]) -> dict[int, list[dict[str, Any]]]:
        """Rows of the chunks of a trial recorded earlier whose task digests match `digests`, by index."""
        return {}
