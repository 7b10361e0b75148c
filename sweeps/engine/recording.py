"""The MLflow recorder: a parent run per sweep, a child run per trial, chunks as they land, reuse across sweeps.

- A child run is named by what varies (`rho=0.25 k=1 seed=0`); its params are the trial's axes spelled as in
  the tables; its metrics are the training results and the evaluation summary only (rounded to 4 significant
  digits); its per-task rows are the `evaluations` table; `trial_result.json` is the source of truth.
- Each finished evaluation chunk is stored at once as `chunks/chunk-<index>.json` on the trial's run, so a rerun
  after a crash redoes only the chunks that are missing.
- A trial is identified by its id (params + identity constants), never by the sweep: a later sweep that holds
  the same trial gets a child run that copies the result and is tagged `reused_from` with the original run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from sweeps.engine.callbacks import ResumeSource, SweepCallback, SweepStart
from sweeps.engine.evaluation import Chunk, ChunkResult
from sweeps.engine.grid import Trial
from sweeps.engine.outcomes import Report, SweepResult, TrialOutcome
from sweeps.engine.secrets import SecretGuard, SecretLeakError
from sweeps.engine.tracking import NOTE_TAG, REUSED_TAG, Tracker

log = logging.getLogger(__name__)

RECORD_ARTIFACT = "trial_result.json"
CHUNK_DIR = "chunks"


def tasks_digest(tasks: list[dict[str, Any]]) -> str:
    """The identity of a chunk's task list: a rerun reuses a recorded chunk only for the very same tasks."""
    return hashlib.sha256(json.dumps(tasks, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _rounded(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Finite numbers only, to 4 significant digits (what a researcher reads; full precision is in the rows)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        out[key] = float(f"{value:.4g}")
    return out


class MLflowRecorder(SweepCallback, ResumeSource):
    """Records a sweep in MLflow from the driver process (the single writer) and answers resume queries."""

    def __init__(self, tracking_uri: str | None, experiment: str, guard: SecretGuard | None = None) -> None:
        self.tracker = Tracker(tracking_uri, experiment=experiment, guard=guard)
        self.parent: str | None = None
        self.sweep_id: str | None = None
        self._children: dict[str, str] = {}
        self._labels: dict[str, str] = {}

    # -- runs --------------------------------------------------------------------------------------------------

    def open(self, sweep_id: str, run_name: str, params: Mapping[str, Any], labels: Mapping[str, str]) -> str:
        """Find-or-create the parent run (before resume queries) and record the sweep's settings on it."""
        self.sweep_id = sweep_id
        self._labels = dict(labels)
        self.parent = self.tracker.parent_run(sweep_id, run_name=run_name)
        self.tracker.log_params(self.parent, params)
        for trial_id, run in self.tracker.child_runs(sweep_id).items():
            self._children[trial_id] = run.info.run_id
        return self.parent

    def child(self, trial_id: str, tags: Mapping[str, Any] | None = None) -> str:
        """The trial's run under this sweep's parent, created on first use."""
        assert self.parent is not None and self.sweep_id is not None
        run_id = self._children.get(trial_id)
        if run_id is None:
            label = self._labels.get(trial_id) or trial_id
            run_id, _ = self.tracker.child_run(
                self.parent, self.sweep_id, trial_id, run_name=label, tags={"label": label, **(tags or {})}
            )
            self._children[trial_id] = run_id
        return run_id

    # -- resume ------------------------------------------------------------------------------------------------

    def completed(self, trials: list[Trial]) -> dict[str, TrialOutcome]:
        """Complete outcomes of `trials`: this sweep's own, else the newest of any earlier sweep (then adopted)."""
        wanted = {t.trial_id for t in trials}
        found: dict[str, TrialOutcome] = {}
        own = self.tracker.child_runs(self.sweep_id or "")
        anywhere = self.tracker.completed_trial_runs()
        for trial_id in sorted(wanted):
            run = own.get(trial_id)
            if run is None or run.data.tags.get("trial_complete") != "1":
                run = anywhere.get(trial_id)
            if run is None:
                continue
            record = self.tracker.load_dict(run.info.run_id, RECORD_ARTIFACT)
            if record is None or record.get("error"):
                continue
            if run.info.status == "RUNNING" and run.data.tags.get("sweep_id") == self.sweep_id:
                # A driver killed between the complete tag and the run's end left it RUNNING: end it now.
                self.tracker.finish(run.info.run_id, "FINISHED")
            outcome = TrialOutcome.from_record(record)
            outcome.label = self._labels.get(trial_id, outcome.label)
            if run.data.tags.get("sweep_id") != self.sweep_id:
                outcome.reused_from = run.data.tags.get(REUSED_TAG) or run.info.run_id
            found[trial_id] = outcome
        return found

    def finished_chunks(self, trial_id: str, digests: list[str]) -> dict[int, list[dict[str, Any]]]:
        """Chunks of the trial's run recorded by an earlier attempt, when their tasks are unchanged."""
        run_id = self._children.get(trial_id)
        if run_id is None:
            return {}
        found = {}
        for path in self.tracker.list_artifacts(run_id, CHUNK_DIR):
            record = self.tracker.load_dict(run_id, path)
            if record is None:
                continue
            index = int(record["index"])
            if index < len(digests) and record.get("tasks_digest") == digests[index]:
                found[index] = list(record["rows"])
        return found

    # -- callbacks ---------------------------------------------------------------------------------------------

    def on_sweep_start(self, start: SweepStart) -> None:
        assert self.parent is not None
        self.tracker.set_tags(self.parent, {"n_trials": len(start.trials), "log_path": start.log_path or ""})

    def on_trial_trained(self, outcome: TrialOutcome) -> None:
        run_id = self.child(outcome.trial_id)
        self.tracker.log_params(run_id, outcome.params)
        self.tracker.log_metrics(run_id, _rounded(outcome.metrics))
        if outcome.checkpoint_path:
            self.tracker.set_tags(run_id, {"checkpoint_path": outcome.checkpoint_path})

    def on_chunk_done(self, outcome: TrialOutcome, chunk: Chunk, n_chunks: int, result: ChunkResult) -> None:
        run_id = self.child(outcome.trial_id)
        for artifact in result.artifacts:
            self.tracker.log_bytes(run_id, artifact.data, f"files/{artifact.name}")
        record = {
            "index": chunk.index,
            "n_chunks": n_chunks,
            "tasks_digest": tasks_digest(chunk.tasks),
            "rows": result.rows,
        }
        self.tracker.log_dict(run_id, record, f"{CHUNK_DIR}/chunk-{chunk.index:05d}.json")

    def on_trial_complete(self, outcome: TrialOutcome) -> None:
        run_id = self.child(outcome.trial_id)
        self._record(run_id, outcome)
        log.info("trial %s recorded in MLflow (run %s)", outcome.trial_id, run_id)

    def on_trial_reused(self, outcome: TrialOutcome) -> None:
        run_id = self.child(outcome.trial_id, tags={REUSED_TAG: outcome.reused_from})
        self._record(run_id, outcome)

    def _record(self, run_id: str, outcome: TrialOutcome) -> None:
        import pandas as pd

        self.tracker.log_params(run_id, outcome.params)
        self.tracker.log_metrics(run_id, _rounded(outcome.metrics))
        if outcome.rows:
            self.tracker.log_table(run_id, pd.DataFrame.from_records(outcome.rows), "evaluations")
        self.tracker.log_dict(run_id, outcome.record(), RECORD_ARTIFACT)
        tags = self.tracker.client.get_run(run_id).data.tags
        if "error" in tags:  # a failure of an earlier attempt
            self.tracker.client.delete_tag(run_id, "error")
        self.tracker.mark_complete(run_id)

    def on_trial_failed(self, outcome: TrialOutcome) -> None:
        run_id = self.child(outcome.trial_id)
        self.tracker.log_params(run_id, outcome.params)
        try:
            self.tracker.set_tags(run_id, {"error": (outcome.error or "failed")[-5000:]})
        except SecretLeakError:  # a traceback that quotes a secret is withheld, not logged
            self.tracker.set_tags(run_id, {"error": "(withheld: the error text contains secret material)"})
        self.tracker.finish(run_id, "FAILED")

    def on_report(self, report: Report) -> None:
        assert self.parent is not None
        for name, table in report.tables.items():
            self.tracker.log_table(self.parent, table, name, caption=report.captions.get(name, ""))
        for name, figure in report.figures.items():
            self.tracker.log_figure(self.parent, figure, name)
        for name, data in report.artifacts.items():
            self.tracker.log_bytes(self.parent, data, name)
        self.tracker.log_metrics(self.parent, _rounded(report.metrics))
        if report.description:
            self.tracker.set_tags(self.parent, {NOTE_TAG: report.description})

    def on_sweep_end(self, result: SweepResult) -> None:
        assert self.parent is not None
        failed = [o for o in result.outcomes if o.error is not None]
        n_total = int(self.tracker.client.get_run(self.parent).data.tags.get("n_trials", len(result.outcomes)))
        self.tracker.set_tags(
            self.parent,
            {
                "n_complete": len(result.outcomes) - len(failed),
                "n_failed": len(failed),
                "n_reused": len(result.reused),
                "n_trained": len(result.trained),
            },
        )
        complete = not failed and len(result.outcomes) >= n_total
        self.tracker.finish(self.parent, "FINISHED" if complete else "FAILED")
