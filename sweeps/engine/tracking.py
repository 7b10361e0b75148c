"""MLflow writes for sweeps: one parent run per sweep, one nested run per trial, tables, plots; no secrets.

Two rules shape it:

- **One writer.** Every MLflow write of a sweep happens in ONE process, the sweep driver. Trials (Ray Tune
  trial actors, Ray Train workers, evaluation actors) return their results to the driver, which logs them.
  Many processes writing one SQLite file give "database is locked"; on a cluster the driver writes through
  `mlflow server` (`ops/mlflow_server.sh`), and the single writer keeps the run bookkeeping free of races.
- **Idempotent.** The parent run is found-or-created by its `sweep_id` tag and each child by its `trial_id`
  tag under that sweep, so retries and reruns never duplicate a run. Params are only added; tables are
  replaced, not appended.

The tracking URI is always absolute (`resolve_tracking_uri`): Ray Tune runs trials in their own directories,
and a relative `sqlite:///mlflow.db` would create one database per directory.

Every param, tag, metric name, table, text and artifact file is checked by the secret guard (`secrets.py`)
before it is written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.engine.secrets import SecretGuard

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

DEFAULT_DB_NAME = "mlflow.db"
SWEEP_TAG = "sweep_id"
TRIAL_TAG = "trial_id"
COMPLETE_TAG = "trial_complete"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag (the UI draws the tree from it)
NOTE_TAG = "mlflow.note.content"  # the description MLflow shows on a run's page
REUSED_TAG = "reused_from"  # on a trial run that copies the result of an earlier sweep's run
# MLflow 3 opens an experiment on its GenAI overview unless told it holds model-development runs.
_EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
_LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"
_MAX_PARAM_LEN = 6000


# ----------------------------------------------------------------------------------------------------------
# Tracking URI
# ----------------------------------------------------------------------------------------------------------


def resolve_tracking_uri(uri: str | None = None, cwd: str | Path | None = None) -> str:
    """Absolute MLflow tracking URI: `uri`, else `$MLFLOW_TRACKING_URI`, else `sqlite:///<abs cwd>/mlflow.db`.

    Relative SQLite and file URIs and bare paths are made absolute against `cwd` (default: the current
    directory); a bare path ending in `.db` becomes a SQLite URI; server URIs (http, https) pass unchanged.
    """
    base = Path(cwd or os.getcwd()).resolve()
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    if uri is None:
        return f"sqlite:///{base / DEFAULT_DB_NAME}"
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if path.startswith("/") or path == ":memory:":
            return uri
        return f"sqlite:///{(base / path).resolve()}"
    if uri.startswith("file:"):
        path = re.sub(r"^file:(//)?", "", uri)
        return "file://" + str((base / path).resolve()) if not path.startswith("/") else "file://" + path
    if "://" in uri or uri in ("databricks",) or uri.startswith("databricks"):
        return uri
    # A bare path.
    path = (base / uri).resolve()
    if path.suffix == ".db":
        return f"sqlite:///{path}"
    raise ValueError(
        f"tracking URI {uri!r}: give sqlite:///PATH.db, a .db path, or an http(s) server URI "
        "(MLflow 3 refuses the ./mlruns file store unless opted in)"
    )


def default_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Artifact root of a new experiment: beside the SQLite file for local stores, else the default."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///") :])
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)
        return (db.parent / "mlartifacts" / safe).as_uri()
    return None


# ----------------------------------------------------------------------------------------------------------
# Tracker
# ----------------------------------------------------------------------------------------------------------


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _param_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        text = json.dumps(list(value), default=str)
    elif value is None:
        text = "None"
    else:
        text = str(value)
    return text[:_MAX_PARAM_LEN]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


class Tracker:
    """MLflow writer for one sweep driver: parent/child runs, params, metrics, tables, figures, guarded."""

    def __init__(
        self, tracking_uri: str | None = None, experiment: str = "sweeps", guard: SecretGuard | None = None
    ) -> None:
        import mlflow
        from mlflow import MlflowClient

        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.guard = guard or SecretGuard()
        mlflow.set_tracking_uri(self.tracking_uri)  # for helpers that use the fluent API (none write here)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.experiment_name = experiment
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            self.guard.check(experiment, "experiment name")
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=default_artifact_location(self.tracking_uri, experiment)
            )
        else:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            self.experiment_id = found.experiment_id
        self.client.set_experiment_tag(self.experiment_id, *_EXPERIMENT_KIND)

    # -- runs ---------------------------------------------------------------------------------------------

    def _search(self, filter_string: str) -> list[Any]:
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string=filter_string, max_results=1000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return sorted(runs, key=lambda run: (run.info.start_time or 0, run.info.run_id))

    def parent_run(self, sweep_id: str, run_name: str | None = None, tags: Mapping[str, Any] | None = None) -> str:
        """Find-or-create the sweep's parent run (by its `sweep_id` tag) and mark it RUNNING."""
        runs = [r for r in self._search(f"tags.{SWEEP_TAG} = '{sweep_id}'") if TRIAL_TAG not in r.data.tags]
        if runs:
            run_id = runs[0].info.run_id
            if len(runs) > 1:
                log.warning("sweep %s has %d parent runs; using the oldest, %s", sweep_id, len(runs), run_id)
            self.client.update_run(run_id, status="RUNNING")
            log.info("mlflow: reusing parent run %s for sweep %s", run_id, sweep_id)
        else:
            all_tags = {SWEEP_TAG: sweep_id, **{k: str(v) for k, v in (tags or {}).items()}}
            self._check_mapping(all_tags, "tag")
            run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=run_name or sweep_id)
            run_id = run.info.run_id
            log.info("mlflow: created parent run %s for sweep %s", run_id, sweep_id)
        return run_id

    def child_runs(self, sweep_id: str) -> dict[str, Any]:
        """The trial runs of a sweep, by trial id (the oldest wins if an outside writer made duplicates)."""
        children: dict[str, Any] = {}
        for run in self._search(f"tags.{SWEEP_TAG} = '{sweep_id}'"):
            trial_id = run.data.tags.get(TRIAL_TAG)
            if trial_id and trial_id not in children:
                children[trial_id] = run
        return children

    def completed_trial_runs(self) -> dict[str, Any]:
        """The newest complete trial run of every trial id in the experiment, whichever sweep recorded it."""
        found: dict[str, Any] = {}
        for run in self._search(f"tags.{COMPLETE_TAG} = '1'"):  # oldest first: later runs overwrite
            trial_id = run.data.tags.get(TRIAL_TAG)
            if trial_id:
                found[trial_id] = run
        return found

    def child_run(
        self,
        parent_run_id: str,
        sweep_id: str,
        trial_id: str,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Find-or-create the nested run of one trial; returns (run_id, already_complete)."""
        runs = self._search(f"tags.{SWEEP_TAG} = '{sweep_id}' and tags.{TRIAL_TAG} = '{trial_id}'")
        if runs:
            run = runs[0]
            return run.info.run_id, run.data.tags.get(COMPLETE_TAG) == "1"
        all_tags = {
            **{k: str(v) for k, v in (tags or {}).items()},
            SWEEP_TAG: sweep_id,
            TRIAL_TAG: trial_id,
            PARENT_TAG: parent_run_id,
        }
        self._check_mapping(all_tags, "tag")
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=run_name or trial_id)
        return run.info.run_id, False

    def mark_complete(self, run_id: str) -> None:
        self.client.set_tag(run_id, COMPLETE_TAG, "1")
        self.finish(run_id, "FINISHED")

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    # -- values -------------------------------------------------------------------------------------------

    def _check_mapping(self, mapping: Mapping[str, Any], kind: str) -> None:
        for key, value in mapping.items():
            self.guard.check(key, f"{kind} name {key!r}")
            self.guard.check(value, f"{kind} {key!r}")

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log (flattened) params that the run does not have yet; an existing param keeps its value."""
        from mlflow.entities import Param

        flat = {k: _param_text(v) for k, v in _flatten(params).items()}
        self._check_mapping(flat, "param")
        existing = self.client.get_run(run_id).data.params
        changed = {k: (existing[k], v) for k, v in flat.items() if k in existing and existing[k] != v}
        if changed:
            log.warning("mlflow run %s: params already logged with other values, kept: %s", run_id, changed)
        new = [Param(k, v) for k, v in flat.items() if k not in existing]
        for start in range(0, len(new), 100):
            self.client.log_batch(run_id, params=new[start : start + 100])

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        texts = {k: _param_text(v) for k, v in tags.items()}
        self._check_mapping(texts, "tag")
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in texts.items()])

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int = 0) -> None:
        """Log the finite numeric entries of `metrics` (others are skipped) at `step`."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        flat = {k: v for k, v in _flatten(metrics).items() if _is_number(v)}
        for key in flat:
            self.guard.check(key, f"metric name {key!r}")
        batch = [Metric(k, float(v), now, step) for k, v in flat.items()]
        for start in range(0, len(batch), 500):
            self.client.log_batch(run_id, metrics=batch[start : start + 500])

    # -- artifacts ----------------------------------------------------------------------------------------

    def _artifact_exists(self, run_id: str, artifact_file: str) -> bool:
        directory = os.path.dirname(artifact_file) or None
        return any(f.path == artifact_file for f in self.client.list_artifacts(run_id, path=directory))

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.guard.check(text, f"artifact {artifact_file}")
        self.client.log_text(run_id, text, artifact_file)

    def log_dict(self, run_id: str, data: Mapping[str, Any], artifact_file: str) -> None:
        self.log_text(run_id, json.dumps(data, indent=2, sort_keys=True, default=str), artifact_file)

    def load_dict(self, run_id: str, artifact_file: str) -> dict[str, Any] | None:
        from mlflow.artifacts import download_artifacts

        if not self._artifact_exists(run_id, artifact_file):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            path = download_artifacts(
                run_id=run_id, artifact_path=artifact_file, dst_path=tmp, tracking_uri=self.tracking_uri
            )
            return json.loads(Path(path).read_text())

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        """Record `data` as the file `artifact_file` of the run (replacing an earlier one of that name)."""
        self.guard.check(data, f"artifact {artifact_file}")
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / Path(artifact_file).name
            target.write_bytes(data)
            self.client.log_artifact(run_id, str(target), os.path.dirname(artifact_file) or None)

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        for file in files:
            self.guard.check_file(file, f"artifact {file.name}")
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_table(
        self, run_id: str, frame: pd.DataFrame, name: str, directory: str = "tables", caption: str = ""
    ) -> None:
        """Log `frame` as an MLflow table (`<directory>/<name>.json`, read by `mlflow.load_table`) plus CSV
        and Markdown artifacts (the Markdown opens with `caption`). Logging a name again REPLACES the table
        (MLflow's own log_table appends)."""
        from sweeps.engine.tables import to_markdown

        artifact_json = f"{directory}/{name}.json"
        csv_text = frame.to_csv(index=False)
        markdown = (f"{caption}\n\n" if caption else "") + to_markdown(frame)
        json_text = frame.to_json(orient="split", index=False, date_format="iso")
        for text, kind in ((csv_text, "csv"), (markdown, "md"), (json_text, "json")):
            self.guard.check(text, f"table {name} ({kind})")
        if self._artifact_exists(run_id, artifact_json):
            with tempfile.TemporaryDirectory() as tmp:
                target = Path(tmp) / f"{name}.json"
                target.write_text(json_text)
                self.client.log_artifact(run_id, str(target), directory)  # overwrite in place
        else:
            self.client.log_table(run_id, data=frame, artifact_file=artifact_json)
        self.client.log_text(run_id, csv_text, f"{directory}/{name}.csv")
        self.client.log_text(run_id, markdown, f"{directory}/{name}.md")

    def load_table(self, run_id: str, name: str, directory: str = "tables") -> pd.DataFrame:
        return self.client.load_table(self.experiment_id, f"{directory}/{name}.json", run_ids=[run_id])

    def log_figure(self, run_id: str, figure: Figure, name: str, directory: str = "plots") -> None:
        """Save a matplotlib figure as `<directory>/<name>.png` (Agg backend, no display needed)."""
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / f"{name}.png"
            figure.savefig(target, dpi=120, bbox_inches="tight")
            self.guard.check_file(target, f"figure {name}")
            self.client.log_artifact(run_id, str(target), directory)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        return [f.path for f in self.client.list_artifacts(run_id, path=path)]
