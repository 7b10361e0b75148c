"""What a sweep produces: trial outcomes, files, the report of tables and figures, and the results frame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from sweeps.engine.stages import StageSummary

SCALARS = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class Artifact:
    """A file produced by an evaluation task or a report (an image grid, a JSON document), recorded as is.

    `name` is a relative path such as `grids/prompt-3.png`; an evaluation row keeps the name in place of the file.
    """

    name: str
    data: bytes


@dataclass
class TrialOutcome:
    """A trial as the driver sees it: params, what training returned, stage folders, evaluation rows, error.

    `metrics` holds the training results and, once every evaluation chunk is in, the evaluation summary;
    `rows` the per-task results (they go to tables, not metrics); `reused_from` the run of an earlier sweep
    whose result this trial reuses.
    """

    trial_id: str
    params: dict[str, Any]
    label: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    checkpoint_path: str | None = None
    stages: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    reused_from: str | None = None

    def record(self) -> dict[str, Any]:
        """The JSON-able record stored with the trial's run (the source of truth for resume and reuse)."""
        return {
            "trial_id": self.trial_id,
            "params": self.params,
            "label": self.label,
            "metrics": self.metrics,
            "checkpoint_path": self.checkpoint_path,
            "stages": self.stages,
            "rows": self.rows,
            "error": self.error,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TrialOutcome:
        """The outcome stored by `record()`."""
        return cls(
            trial_id=record["trial_id"],
            params=dict(record["params"]),
            label=record.get("label") or "",
            metrics=dict(record.get("metrics") or {}),
            checkpoint_path=record.get("checkpoint_path"),
            stages=dict(record.get("stages") or {}),
            rows=list(record.get("rows") or []),
            error=record.get("error"),
        )


@dataclass
class Report:
    """What a sweep's report function returns, recorded on the parent run.

    `tables` become MLflow tables plus CSV and Markdown artifacts (`captions` say what their values are);
    `figures` PNG plots; `artifacts` other files; `metrics` the parent's summary numbers; `description` the
    parent run's note (MLflow shows it on the run page); `console` the tables printed at the end of the run,
    each as `display[name]` when given (e.g. "mean ± std" strings) and as recorded otherwise.
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    console: Sequence[str] = ()
    display: dict[str, pd.DataFrame] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    description: str = ""


@dataclass
class SweepResult:
    """The end of a `run` call: every outcome, the results frame, the report and what was trained now."""

    sweep_id: str
    outcomes: list[TrialOutcome]
    frame: pd.DataFrame
    report: Report | None
    stages: StageSummary | None
    parent_run_id: str | None
    trained: list[str]  # trial ids that ran in Tune during this call
    reused: list[str]  # trial ids taken from an earlier sweep
    wall_s: float
    log_path: str | None = None


def results_frame(outcomes: Sequence[TrialOutcome]) -> pd.DataFrame:
    """One row per evaluation row (one per trial without evaluation): trial_id, label, params, metrics, row."""
    import pandas as pd

    records = []
    for outcome in outcomes:
        base = {"trial_id": outcome.trial_id, "label": outcome.label, **outcome.params}
        metrics = {k: v for k, v in outcome.metrics.items() if isinstance(v, SCALARS)}
        if outcome.rows:
            records.extend({**base, **metrics, **row} for row in outcome.rows)
        else:
            records.append({**base, **metrics})
    return pd.DataFrame.from_records(records)
