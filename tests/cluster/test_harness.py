"""The local cluster harness (ops/local/): its MLflow check and its teardown helper, fast; the harness scripts
themselves end to end only on request (RADIO_CLUSTER_HARNESS=1: minutes each, root for slurm.sh and rayup.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "ops" / "local"


def _check(uri: str, *args: str) -> subprocess.CompletedProcess:
    """ops/local/check_mlflow.py in this process (an MLflow import per call would cost seconds)."""
    import contextlib
    import importlib.util
    import io

    spec = importlib.util.spec_from_file_location("check_mlflow", LOCAL / "check_mlflow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = module.main(["--tracking-uri", uri, *args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_check_mlflow_finds_duplicates_missing_trials_and_changes(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("radio-smoke")
    parent = client.create_run(experiment, tags={"sweep_id": "s1"}).info.run_id
    children = {}
    for trial in ("t1", "t2"):
        tags = {"sweep_id": "s1", "trial_id": trial, "mlflow.parentRunId": parent, "trial_complete": "1"}
        children[trial] = client.create_run(experiment, tags=tags).info.run_id
        client.log_metric(children[trial], "loss", 1.0)
        client.set_terminated(children[trial])
    saved = tmp_path / "first.json"
    ok = _check(uri, "--trials", "2", "--save", str(saved))
    assert ok.returncode == 0, ok.stderr
    assert "each recorded once and complete" in ok.stdout
    assert _check(uri, "--trials", "3").returncode == 1
    assert _check(uri, "--trials", "2", "--unchanged-since", str(saved)).returncode == 0

    client.log_metric(children["t1"], "loss", 0.5, step=1)  # a retrained trial logs again
    changed = _check(uri, "--trials", "2", "--unchanged-since", str(saved))
    assert changed.returncode == 1 and "t1 changed" in changed.stderr

    tags = {"sweep_id": "s1", "trial_id": "t2", "mlflow.parentRunId": parent, "trial_complete": "1"}
    client.create_run(experiment, tags=tags)  # the same trial recorded twice
    duplicate = _check(uri, "--trials", "2")
    assert duplicate.returncode == 1 and "t2 recorded 2 times" in duplicate.stderr


def test_teardown_stops_only_processes_that_name_its_temp_dir(tmp_path):
    """stop_pids_naming DIR stops the processes whose command line or environment names DIR, and their children
    (Ray renames its agents, which keep only the raylet as parent); a process naming another dir survives."""
    mine, other = tmp_path / "mine", tmp_path / "other"
    mine.mkdir()
    other.mkdir()
    child = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    procs = [
        subprocess.Popen([sys.executable, "-c", child, str(mine)]),  # names the dir on its command line
        subprocess.Popen(["sleep", "301"], env={**os.environ, "RAY_AUTH_TOKEN_PATH": str(mine / "token")}),
        subprocess.Popen(["sleep", "302"], env={**os.environ, "RAY_AUTH_TOKEN_PATH": str(other / "token")}),
    ]
    try:
        time.sleep(1)
        script = f'HARNESS=test; source "{LOCAL / "lib.sh"}"; stop_pids_naming "{mine}"'
        subprocess.run(["bash", "-c", script], check=True, timeout=60)
        for proc in procs[:2]:
            assert proc.wait(timeout=20) is not None
        assert procs[2].poll() is None, "a process naming another temp dir was stopped"
        grandchildren = subprocess.run(["pgrep", "-f", "^sleep 300$"], capture_output=True, text=True).stdout
        for pid in grandchildren.split():
            ppid = Path(f"/proc/{pid}/stat").read_text().split()[3]
            assert ppid != str(procs[0].pid), "the child of a stopped process survived"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("script", ["multinode.sh", "slurm.sh", "rayup.sh"])
def test_harness_end_to_end(script):
    if os.environ.get("RADIO_CLUSTER_HARNESS") != "1":
        pytest.skip("set RADIO_CLUSTER_HARNESS=1 to run ops/local/*.sh (minutes each; .ci/run runs ops/local/all.sh)")
    if script != "multinode.sh" and os.geteuid() != 0:
        pytest.skip(f"{script} needs root")
    result = subprocess.run(["bash", str(LOCAL / script)], capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "MLflow check passed" in result.stdout
