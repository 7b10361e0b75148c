"""sweeps.engine.tracking and tables: absolute URIs, find-or-create runs, replaced tables, plots, secret guard."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import sweeps_testlib  # noqa: F401  (import paths)

from sweeps.engine.secrets import SecretGuard, SecretLeakError
from sweeps.engine.tables import aggregate, line_plot, mean_std_columns, mean_std_table, rows_at_base, to_markdown
from sweeps.engine.tracking import Tracker, resolve_tracking_uri


def test_resolve_tracking_uri(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(cwd=tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_tracking_uri("sqlite:///x/m.db", cwd=tmp_path) == f"sqlite:///{tmp_path}/x/m.db"
    assert resolve_tracking_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert resolve_tracking_uri("runs.db", cwd=tmp_path) == f"sqlite:///{tmp_path}/runs.db"
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert resolve_tracking_uri(cwd=tmp_path) == f"sqlite:///{tmp_path}/env.db"
    assert resolve_tracking_uri("http://h:1", cwd=tmp_path) == "http://h:1"
    with pytest.raises(ValueError, match="mlruns"):
        resolve_tracking_uri("mlruns", cwd=tmp_path)


def test_secret_guard_forms():
    guard = SecretGuard()
    key = "9f2c4e6a8b0d1f3a5c7e9b1d3f5a7c9e"
    guard.register(key.encode())
    guard.check("lr=1e-4", "param")
    for leaked in (key, f"prefix-{key}-suffix", key.encode().hex()):
        with pytest.raises(SecretLeakError, match="param"):
            guard.check(leaked, "param")
    small = SecretGuard()
    small.register(42)
    small.check("top42x", "metric name")  # short secrets match whole tokens only
    with pytest.raises(SecretLeakError):
        small.check("seed 42", "param")


def test_tracker_runs_tables_figures_and_guard(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    guard = SecretGuard()
    key = b"correct-horse-battery-staple-0123"
    guard.register(key)
    tracker = Tracker(uri, experiment="unit", guard=guard)
    parent = tracker.parent_run("sweep-1")
    assert tracker.parent_run("sweep-1") == parent  # find, not create
    child, complete = tracker.child_run(parent, "sweep-1", "t1")
    assert not complete
    assert tracker.child_run(parent, "sweep-1", "t1") == (child, False)
    tracker.log_params(child, {"lr": 1e-4, "nested": {"k": 2}, "key_fingerprint": "ab12cd34"})
    tracker.log_params(child, {"lr": 1e-4})  # idempotent
    tracker.log_metrics(child, {"loss": 1.5, "nan": math.nan, "name": "x"})
    tracker.mark_complete(child)
    assert tracker.child_run(parent, "sweep-1", "t1") == (child, True)
    run = tracker.client.get_run(child)
    assert run.data.params["nested.k"] == "2" and run.data.metrics == {"loss": 1.5}
    assert run.data.tags["mlflow.parentRunId"] == parent

    with pytest.raises(SecretLeakError):
        tracker.log_params(child, {"key": key.decode()})
    with pytest.raises(SecretLeakError):
        tracker.set_tags(child, {"note": "key is " + key.decode()})
    with pytest.raises(SecretLeakError):
        tracker.log_table(parent, pd.DataFrame({"k": [key.decode()]}), "leak")
    assert "key" not in tracker.client.get_run(child).data.params
    assert "tables/leak.json" not in tracker.list_artifacts(parent, "tables")

    table = pd.DataFrame({"rho": [0.0, 0.1], "log10_p": [-0.3, -7.5]})
    tracker.log_table(parent, table, "pvalues")
    tracker.log_table(parent, table, "pvalues")  # replaced, not appended
    loaded = tracker.load_table(parent, "pvalues")
    assert len(loaded) == 2
    tracker.log_table(parent, table.assign(log10_p=[-0.1, -9.0]), "pvalues")
    assert tracker.load_table(parent, "pvalues")["log10_p"].tolist() == [-0.1, -9.0]
    assert set(tracker.list_artifacts(parent, "tables")) >= {
        "tables/pvalues.json",
        "tables/pvalues.csv",
        "tables/pvalues.md",
    }
    tracker.log_figure(parent, line_plot(table, "rho", "log10_p", title="t"), "pvalue_vs_rho")
    assert "plots/pvalue_vs_rho.png" in tracker.list_artifacts(parent, "plots")
    # a second tracker on the same store finds the same experiment and runs
    again = Tracker(uri, experiment="unit")
    assert again.experiment_id == tracker.experiment_id
    assert set(again.child_runs("sweep-1")) == {"t1"}


def test_summary_tables():
    frame = pd.DataFrame(
        {
            "rho": [0.0, 0.0, 0.5, 0.5, 0.5],
            "setting": ["open", "open", "open", "open", "closed"],
            "seed": [0, 1, 0, 1, 0],
            "log10_p": [-0.2, -0.4, -8.0, -10.0, -3.0],
        }
    )
    stats = aggregate(frame, ["rho", "setting"], "log10_p")
    row = stats[(stats.rho == 0.5) & (stats.setting == "open")].iloc[0]
    assert row["log10_p_mean"] == pytest.approx(-9.0) and row["n"] == 2
    assert row["log10_p_std"] == pytest.approx(math.sqrt(2.0))
    pivot = mean_std_table(frame, "rho", "setting", "log10_p")
    assert list(pivot.columns) == ["rho", "closed", "open"]
    assert pivot.loc[pivot.rho == 0.5, "open"].item() == "-9.0 ± 1.4"
    assert pivot.loc[pivot.rho == 0.5, "closed"].item() == "-3.0"
    text = to_markdown(pivot)
    assert text.splitlines()[0].startswith("| rho") and "-9.0 ± 1.4" in text
    with pytest.raises(KeyError, match="seed"):
        aggregate(frame.drop(columns="seed"), ["rho"], "log10_p")


def test_mean_std_columns_are_numeric_and_sortable():
    frame = pd.DataFrame(
        {"model": ["a", "a", "b", "b", "a"], "test": ["t1", "t1", "t1", "t2", "t2"], "v": [-1.0, -3.0, -5.0, 2.0, 0.5]}
    )
    table = mean_std_columns(frame, "model", "test", "v")
    assert list(table.columns) == ["model", "t1 mean", "t1 std", "t2 mean", "t2 std"]
    row_a = table[table["model"] == "a"].iloc[0]
    assert row_a["t1 mean"] == -2.0 and row_a["t1 std"] == pytest.approx(math.sqrt(2), abs=1e-3)
    assert math.isnan(row_a["t2 std"])  # one replicate
    assert table["t1 mean"].dtype.kind == "f"


def test_rows_at_base_holds_every_other_varied_axis():
    frame = pd.DataFrame(
        {
            "rho": [0.0, 0.5, 1.0, 1.0, 1.0, 0.0],
            "k": [1, 1, 1, 2, 1, 1],
            "epochs": [3, 3, 3, 3, 1, 0],
            "scheme": ["kgw"] * 6,  # one value, though not the base's: the sweep's own, kept
        }
    )
    base = {"rho": 1.0, "k": 1, "epochs": 3, "scheme": "aaronson"}
    assert rows_at_base(frame, base, "rho").index.tolist() == [0, 1, 2]
    assert rows_at_base(frame, base, "rho", also={"epochs": [0]}).index.tolist() == [0, 1, 2, 5]
    assert rows_at_base(frame, base, "k").index.tolist() == [2, 3]
    assert rows_at_base(frame, base, "k", axes=["k", "epochs"]).index.tolist() == [0, 1, 2, 3]
