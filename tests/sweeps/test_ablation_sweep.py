"""The main job end to end: `python sweeps/ablation.py --preset smoke` as users run it, then once more.

The smoke run (about two minutes on 2 cores) is part of the default test run, so CI runs the sweep; the
fault-injection run (a killed fine-tune worker) is marked slow.

The smoke preset runs the real pipeline (tokenizer, bases, watermarked generation, mixes, DeepSpeed fine-tunes in
Ray Train workers under Ray Tune, detection actors, MLflow) at minimal sizes. It checks the plumbing and the central
claim: the p-value table has the expected rows and columns, every cell is finite, the rho = 1 model is detected,
and the controls (rho = 0, the base model, wrong keys) are not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = "smoke-test-secret-key-0123456789"


def _command(workdir: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """The main job's command line on the smoke preset, with its own cache and storage, and its environment."""
    env = {**os.environ, "RADIO_WATERMARK_KEY": SECRET, "PYTHONUNBUFFERED": "1", "RADIO_TEST_WORKDIR": str(workdir)}
    command = [
        sys.executable,
        str(REPO / "sweeps" / "ablation.py"),
        "--preset",
        "smoke",
        "--cache-root",
        str(workdir / "cache"),
        "--storage-path",
        str(workdir / "storage"),
        *args,
    ]
    return command, env


def _run(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    command, env = _command(workdir, *args)
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def _runs(workdir: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("radio-smoke")
    return client.search_runs([experiment.experiment_id], max_results=1000)


SMOKE_TESTS = ("open-unsupervised", "closed-supervised-phi", "mia")  # the smoke preset's detect.tests
KEYED_TESTS = ("open-unsupervised", "closed-supervised-phi")


def _parent_table(workdir: Path, run_id: str, name: str) -> pd.DataFrame:
    """A table the sweep logged on its parent run (`tables/<name>.csv`)."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    path = client.download_artifacts(run_id, f"tables/{name}.csv", str(workdir / "downloads"))
    return pd.read_csv(path)


def check_pvalue_table(table: pd.DataFrame) -> None:
    """The smoke sweep's claim: rows and columns as expected, every cell finite, rho = 1 detected, controls not."""
    assert sorted(table["model"]) == ["base model", "rho=0", "rho=1"], table
    expected = {f"{t} mean" for t in SMOKE_TESTS} | {f"{t}/wrong-key mean" for t in KEYED_TESTS}
    means = {c for c in table.columns if c.endswith(" mean")}
    assert means == expected, sorted(means)
    cells = table.set_index("model")[sorted(means)]
    assert np.isfinite(cells.to_numpy(dtype=float)).all(), cells
    assert (cells.to_numpy(dtype=float) <= 0).all(), cells  # log10 p
    assert cells.loc["rho=1", "open-unsupervised mean"] < -5, cells  # the top rho is detected, p < 1e-5
    assert cells.loc["rho=1", "mia mean"] < -2, cells  # the known set is in B's training data (d = 1)
    for control in ("rho=0", "base model"):
        assert (cells.loc[control] > -2).all(), cells  # not detected: p > 0.01
    wrong = [c for c in cells.columns if "/wrong-key" in c]
    assert (cells[wrong] > -2).all().all(), cells


@pytest.mark.slow  # about 6 minutes on 2 idle cores; CI's harness runs this preset via Ray, SLURM, ray up
def test_smoke_sweep_records_every_trial_once_and_reruns_from_cache(tmp_path: Path) -> None:
    start = time.perf_counter()
    first = _run(tmp_path)
    first_s = time.perf_counter() - start

    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
    assert "pvalues:" in first.stdout and "open-unsupervised" in first.stdout

    runs = _runs(tmp_path)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3
    assert len({c.data.tags.get("trial_id") for c in children}) == 3
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tables = {a.path for a in client.list_artifacts(parents[0].info.run_id, "tables")}
    plots = {a.path for a in client.list_artifacts(parents[0].info.run_id, "plots")}
    assert any("pvalues" in a for a in tables), tables
    assert any("log10p_vs_rho" in a for a in plots), plots
    check_pvalue_table(_parent_table(tmp_path, parents[0].info.run_id, "pvalues"))
    findings = _parent_table(tmp_path, parents[0].info.run_id, "findings").set_index("claim")
    assert findings.loc["controls uniform", "verdict"] == "holds", findings.to_dict()
    assert findings.loc["detection grows with rho", "verdict"] == "not in this sweep"  # one rho > 0 only
    utility = _parent_table(tmp_path, parents[0].info.run_id, "utility").set_index("model")
    assert np.isfinite(utility[["ppl", "answer_ppl"]].to_numpy(dtype=float)).all(), utility

    # the key never reaches MLflow or any file written under the work folder
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert SECRET.encode() not in path.read_bytes(), path

    assert len(first.stdout.splitlines()) <= 100, first.stdout  # the live view; Ray output is in the log file
    assert "sweep.log" in first.stdout and "3 trained now" in first.stdout

    # Extending the finished sweep trains only the new points; the new parent lists every point.
    extended = _run(tmp_path, "rho=0,0.5,1", "lr=0.003,0.001")
    assert extended.returncode == 0, extended.stdout[-3000:] + extended.stderr[-3000:]
    assert "2 trained now, 3 reused" in extended.stdout, extended.stdout
    assert "ablation_lr:" in extended.stdout
    runs = _runs(tmp_path)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2
    new_parent = next(p for p in parents if p.data.tags["n_trials"] == "5")
    listed = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == new_parent.info.run_id]
    assert len(listed) == 5 and sum("reused_from" in r.data.tags for r in listed) == 3
    assert {r.info.run_name for r in listed} >= {"rho=0.5 seed=0", "rho=1 lr=0.001 seed=0", "base model seed=0"}
    tables = {a.path for a in client.list_artifacts(new_parent.info.run_id, "tables")}
    assert "tables/ablation_lr.json" in tables and "tables/pvalues.csv" in tables
    assert new_parent.data.metrics["controls_fpr_0.01"] == 0.0
    findings = _parent_table(tmp_path, new_parent.info.run_id, "findings").set_index("claim")
    assert findings.loc["detection grows with rho", "verdict"] in ("holds", "partly"), findings.to_dict()
    assert findings.loc["controls uniform", "verdict"] == "holds", findings.to_dict()
    assert "log10 p" in new_parent.data.tags["mlflow.note.content"]

    # The same command again: everything is recorded, nothing runs.
    start = time.perf_counter()
    again = _run(tmp_path, "rho=0,0.5,1", "lr=0.003,0.001")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "5 already recorded, 0 to run" in again.stdout
    assert len(_runs(tmp_path)) == len(runs)
    assert time.perf_counter() - start < first_s / 2


def test_dry_run_and_bad_overrides(tmp_path: Path) -> None:
    dry = _run(tmp_path, "--dry-run", timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "3 trial(s)" in dry.stdout and "shared stages" in dry.stdout
    bad = _run(tmp_path, "rho=2", "--dry-run", timeout=120)
    assert bad.returncode != 0 and "rho" in bad.stderr
    unknown = _run(tmp_path, "temperature=1", "--dry-run", timeout=120)
    assert unknown.returncode != 0 and "temperature" in unknown.stderr


def test_key_errors_and_a_dry_run_that_writes_no_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RADIO_WATERMARK_KEY"}
    env["HOME"] = str(tmp_path / "home")
    script = [sys.executable, str(REPO / "sweeps" / "ablation.py"), "--preset", "smoke"]
    missing = subprocess.run(
        [*script, "--key-file", str(tmp_path / "nope.key"), "--dry-run"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and "error: --key-file" in missing.stderr and "Traceback" not in missing.stderr
    dry = subprocess.run([*script, "--dry-run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert not (tmp_path / "home" / ".config" / "radio" / "watermark.key").exists()


def test_unknown_preset_key_is_rejected(tmp_path: Path) -> None:
    preset = tmp_path / "bad.yaml"
    smoke = REPO / "sweeps" / "audits" / "radioactivity" / "presets" / "smoke.yaml"
    preset.write_text(smoke.read_text() + "\nlearning_rate: 1\n")
    env = {**os.environ, "RADIO_WATERMARK_KEY": SECRET}
    out = subprocess.run(
        [sys.executable, str(REPO / "sweeps" / "ablation.py"), "--preset", str(preset), "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "learning_rate" in out.stderr


def test_a_preset_extends_another_section_by_section(tmp_path: Path) -> None:
    from radio.config import ConfigError
    from sweeps.audits.radioactivity.config import load_preset

    tiny, ablations = load_preset("tiny"), load_preset("ablations")
    assert ablations.name == "radio-ablations"
    assert "closed-unsupervised-phi" in [test["name"] for test in ablations.detect.tests]
    assert (ablations.generate, ablations.finetune) == (tiny.generate, tiny.finetune)  # sections it leaves out
    assert (ablations.mix.phi_size, tiny.mix.phi_size) == (200, 300)  # a section it gives replaces the parent's
    assert "rho" not in ablations.grid.vary  # the grid section replaces the parent's whole grid
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\nname: child\n")
    (tmp_path / "parent.yaml").write_text("extends: child.yaml\n")
    with pytest.raises(ConfigError, match="leads back to itself"):
        load_preset(str(child))
    child.write_text("extends: no-such-preset\n")
    with pytest.raises(ConfigError, match="extends: no-such-preset: unknown preset"):
        load_preset(str(child))


def _kill_first_train_worker(workdir: Path, sweep: subprocess.Popen, deadline: float) -> int | None:
    """Wait for a mid-run Trainer checkpoint of the first fine-tune, then SIGKILL its Ray Train worker process
    (only a worker of this sweep: its environment carries this test's work folder)."""
    import psutil

    while time.perf_counter() < deadline and sweep.poll() is None:
        if any((workdir / "storage").glob("*/checkpoints/*/checkpoints/checkpoint-*")):
            for proc in psutil.process_iter(["pid", "cmdline"]):
                try:
                    mine = proc.environ().get("RADIO_TEST_WORKDIR") == str(workdir)
                except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                    continue
                if mine and "RayTrainWorker" in " ".join(proc.info["cmdline"] or []):
                    proc.kill()
                    return proc.info["pid"]
        time.sleep(0.2)
    return None


@pytest.mark.slow
def test_a_killed_fine_tune_worker_is_retried_and_every_trial_recorded_once(tmp_path: Path) -> None:
    command, env = _command(tmp_path)
    with (tmp_path / "log.txt").open("w") as log:
        sweep = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        killed = _kill_first_train_worker(tmp_path, sweep, time.perf_counter() + 600)
        code = sweep.wait(timeout=900)
    output = (tmp_path / "log.txt").read_text()
    assert killed is not None, output[-3000:]
    assert code == 0, output[-5000:]
    children = [r for r in _runs(tmp_path) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3 and len({c.data.tags.get("trial_id") for c in children}) == 3
    assert all(c.info.status == "FINISHED" for c in children)
