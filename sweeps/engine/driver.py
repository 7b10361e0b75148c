"""The driver: turns trial events (from Tune, or evaluation-only points) into evaluation chunks and callbacks.

It lives in the sweep's driver process. Trials and actors return plain data; the driver alone tells the
callbacks (MLflow, the live view), so there is one writer. Tune's callback object is pickled into Tune's
experiment state: it pickles as a stateless stub that forwards to the driver of the current process, so a
restored experiment reports to the new driver.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from sweeps.engine.callbacks import ResumeSource, SweepCallback
from sweeps.engine.evaluation import ActorPool, Chunk, ChunkResult, EvalContext
from sweeps.engine.grid import Trial
from sweeps.engine.outcomes import TrialOutcome
from sweeps.engine.recording import tasks_digest
from sweeps.engine.sweep import Sweep
from sweeps.engine.trial import CHECKPOINT_KEY, RESULT_KEY

log = logging.getLogger(__name__)

ACTIVE: Driver | None = None  # the driver Tune's callback forwards to (one sweep per process at a time)


class Driver:
    """Collects outcomes, submits evaluation chunks, assembles rows, and calls the callbacks."""

    def __init__(
        self,
        sweep: Sweep,
        callbacks: Sequence[SweepCallback],
        resume: ResumeSource | None,
        labels: Mapping[str, str],
    ) -> None:
        self.sweep = sweep
        self.callbacks = list(callbacks)
        self.resume = resume
        self.labels = dict(labels)
        self.outcomes: dict[str, TrialOutcome] = {}
        self.pool = ActorPool(sweep.evaluation) if sweep.evaluation else None
        self.ran: set[str] = set()  # trials that Tune ran to completion in this process (not restored)
        self._chunks: dict[str, dict[int, list[dict[str, Any]]]] = {}  # trial -> rows of finished chunks
        self._n_chunks: dict[str, int] = {}

    def emit(self, hook: str, *args: Any) -> None:
        """Call `hook` on every callback, in order (a recorder's error propagates: nothing is half-recorded)."""
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    # -- trial events ------------------------------------------------------------------------------------------

    def trial_started(self, trial_id: str) -> None:
        """Tune started (or restarted) a trial."""
        self.emit("on_trial_start", trial_id)

    def trial_trained(
        self,
        config: Mapping[str, Any],
        last_result: Mapping[str, Any] | None,
        checkpoint: Any,
        error: str | None,
        live: bool = False,
    ) -> None:
        """A Tune trial ended (successfully or not): record it and start its evaluation."""
        spec = config["trial"]
        trial_id = spec["trial_id"]
        if live and error is None:
            self.ran.add(trial_id)
        if trial_id in self.outcomes:  # already handled (a callback and the final reconciliation both report)
            return
        outcome = TrialOutcome(
            trial_id=trial_id,
            params=dict(spec["params"]),
            label=self.labels.get(trial_id, trial_id),
            stages=dict(spec["stages"]),
        )
        result = (last_result or {}).get(RESULT_KEY)
        if error is None and result is None:
            error = "the trial ended without a final result"
        if error is not None:
            outcome.error = error
            self.outcomes[trial_id] = outcome
            self.emit("on_trial_failed", outcome)
            return
        metrics = json.loads(result)
        outcome.checkpoint_path = metrics.pop(CHECKPOINT_KEY, None) or (
            checkpoint.path if checkpoint is not None else None
        )
        outcome.metrics = metrics
        self._evaluate(outcome)

    def evaluate_only(self, trial: Trial, stages: Mapping[str, Path]) -> None:
        """An evaluation-only point: its model is the one it names (`Sweep.model`), no training."""
        outcome = TrialOutcome(
            trial_id=trial.trial_id,
            params=dict(trial.params),
            label=self.labels.get(trial.trial_id, trial.trial_id),
            stages={k: str(v) for k, v in stages.items()},
        )
        if self.sweep.model is not None:
            outcome.checkpoint_path = self.sweep.model(trial.params, stages)
        self.emit("on_trial_start", trial.trial_id)
        self._evaluate(outcome)

    def _evaluate(self, outcome: TrialOutcome) -> None:
        self.outcomes[outcome.trial_id] = outcome
        self.emit("on_trial_trained", outcome)
        evaluation = self.sweep.evaluation
        if evaluation is None or self.pool is None:
            self.emit("on_trial_complete", outcome)
            return
        chunks = evaluation.chunks(evaluation.tasks(outcome))
        digests = [tasks_digest(chunk) for chunk in chunks]
        done = self.resume.finished_chunks(outcome.trial_id, digests) if self.resume is not None else {}
        self._chunks[outcome.trial_id] = dict(done)
        self._n_chunks[outcome.trial_id] = len(chunks)
        context = EvalContext(
            trial_id=outcome.trial_id,
            checkpoint=outcome.checkpoint_path,
            params=dict(outcome.params),
            stages={k: Path(v) for k, v in outcome.stages.items()},
        )
        key = evaluation.key_of(context)
        todo = [i for i in range(len(chunks)) if i not in done]
        if done:
            self.emit("on_progress", f"{outcome.label}: {len(done)} of {len(chunks)} chunk(s) already recorded")
        for index in todo:
            self.pool.submit(Chunk(outcome.trial_id, index, key, context, chunks[index]))
        if not todo:
            self._finish(outcome)

    # -- evaluation results ------------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> None:
        """Take the chunks that finished; complete the trials whose chunks are all in."""
        if self.pool is None:
            return
        for chunk, result in self.pool.poll(timeout):
            outcome = self.outcomes[chunk.trial_id]
            if outcome.error is not None:
                continue
            if isinstance(result, BaseException):
                message = "".join(traceback.format_exception_only(result)).strip()
                outcome.error = f"evaluation failed (chunk {chunk.index}): {message}"
                self._chunks.pop(chunk.trial_id, None)
                self._n_chunks.pop(chunk.trial_id, None)
                self.emit("on_trial_failed", outcome)
                continue
            assert isinstance(result, ChunkResult)
            self._chunks[chunk.trial_id][chunk.index] = result.rows
            self.emit("on_chunk_done", outcome, chunk, self._n_chunks[chunk.trial_id], result)
            if len(self._chunks[chunk.trial_id]) == self._n_chunks[chunk.trial_id]:
                self._finish(outcome)

    def _finish(self, outcome: TrialOutcome) -> None:
        rows_by_chunk = self._chunks.pop(outcome.trial_id)
        n_chunks = self._n_chunks.pop(outcome.trial_id)
        outcome.rows = [row for index in range(n_chunks) for row in rows_by_chunk[index]]
        evaluation = self.sweep.evaluation
        if evaluation is not None and evaluation.summarize is not None:
            outcome.metrics.update(dict(evaluation.summarize(outcome.rows)))
        self.emit("on_trial_complete", outcome)

    def drain(self) -> None:
        """Wait for every submitted chunk."""
        while self.pool is not None and self.pool.pending:
            self.poll(timeout=1.0)

    def shutdown(self) -> None:
        """Stop the evaluation actors."""
        if self.pool is not None:
            with suppress(Exception):
                self.pool.shutdown()


# -- Tune's callback -----------------------------------------------------------------------------------------------


def _error_text(trial: Any) -> str:
    """The end of the trial's error file (Tune writes the traceback there), or a generic message."""
    path = getattr(trial, "error_file", None)
    with suppress(OSError, TypeError):
        if path and Path(path).is_file():
            return Path(path).read_text(errors="replace")[-2000:].strip() or "trial errored"
    return "trial errored"


_CALLBACK_CLASS: type | None = None


def make_tune_callback() -> Any:
    """The Tune callback that forwards trial events to `ACTIVE` (built lazily: importing Ray is slow)."""
    global _CALLBACK_CLASS
    if _CALLBACK_CLASS is None:
        from ray.tune import Callback

        class SweepTuneCallback(Callback):
            """Forwards trial events to the driver of this process; pickles without state."""

            def __reduce__(self) -> tuple[Any, ...]:
                return (make_tune_callback, ())

            def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                if ACTIVE is not None:
                    ACTIVE.trial_started(trial.config["trial"]["trial_id"])

            def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                if ACTIVE is not None:
                    ACTIVE.trial_trained(trial.config, trial.last_result, trial.checkpoint, None, live=True)

            def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                if ACTIVE is not None:
                    ACTIVE.trial_trained(trial.config, trial.last_result, trial.checkpoint, _error_text(trial))

            def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
                if ACTIVE is not None:
                    ACTIVE.poll()

        _CALLBACK_CLASS = SweepTuneCallback
    return _CALLBACK_CLASS()
