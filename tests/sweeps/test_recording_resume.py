"""Resume from MLflow: a trial whose run was tagged complete but left RUNNING (the driver killed between the tag and
the run's end) is reused as complete, and its run is ended, not left running forever."""

from __future__ import annotations

from pathlib import Path

import sweeps_testlib  # noqa: F401  (import paths)
from mlflow.tracking import MlflowClient

from sweeps.engine.grid import Trial
from sweeps.engine.outcomes import TrialOutcome
from sweeps.engine.recording import MLflowRecorder


def test_a_complete_trial_left_running_is_reused_and_ended(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = MLflowRecorder(uri, "resume")
    first.open("sweep-1", "sweep-1", {}, {})
    outcome = TrialOutcome(trial_id="t1", params={"lr": 0.1, "seed": 0}, metrics={"loss": 1.5})
    first.on_trial_complete(outcome)
    run_id = first.child("t1")
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    client.update_run(run_id, status="RUNNING")  # as a driver killed right after the complete tag leaves it

    second = MLflowRecorder(uri, "resume")
    second.open("sweep-1", "sweep-1", {}, {})
    found = second.completed([Trial("t1", {"lr": 0.1, "seed": 0}, "p1")])
    assert list(found) == ["t1"] and found["t1"].metrics["loss"] == 1.5
    assert client.get_run(run_id).info.status == "FINISHED"
