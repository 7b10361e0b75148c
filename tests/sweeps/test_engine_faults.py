"""Faults a cluster brings, on the engine: the driver killed (a SLURM timeout or requeue) and the same command
rerun; two builders of one stage at once; a stage that fails."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sweeps_testlib

from stagestore import find_complete, run_stage
from sweeps.engine import Grid, Resources, Stage, Sweep, main

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "toy_train_sweep.py"


def _calls(workdir: Path) -> list[str]:
    path = workdir / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def _runs(workdir: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("toy-train")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def _complete_children(workdir: Path) -> int:
    if not (workdir / "mlflow.db").exists():
        return 0
    try:
        return sum(r.data.tags.get("trial_complete") == "1" for r in _runs(workdir))
    except Exception:  # the database is being created by the sweep
        return 0


@pytest.mark.timeout(900)
def test_driver_killed_twice_then_rerun_resumes_without_duplicates(tmp_path, ray_token_auth):
    temp_dir = Path("/tmp") / f"rf{os.getpid()}"
    command = [sys.executable, str(SCRIPT), str(tmp_path)]

    # 1. Killed while the shared stage is being built: its half-built folder must not count as complete.
    proc = sweeps_testlib.start_sweep_process(command, temp_dir)
    assert sweeps_testlib.wait_for(lambda: "stage-start" in _calls(tmp_path), 180, proc)
    sweeps_testlib.kill_sweep_process(proc, temp_dir)
    assert "stage-done" not in _calls(tmp_path)
    assert not list((tmp_path / "cache" / "data").glob("*/manifest.json"))

    # 2. Killed after the first trial was recorded, while others run.
    proc = sweeps_testlib.start_sweep_process(command, temp_dir)
    assert sweeps_testlib.wait_for(lambda: _complete_children(tmp_path) >= 1, 300, proc)
    sweeps_testlib.kill_sweep_process(proc, temp_dir)
    assert _calls(tmp_path).count("stage-done") == 1  # rebuilt once after the first kill
    recorded = {r.data.tags["trial_id"] for r in _runs(tmp_path) if r.data.tags.get("trial_complete") == "1"}

    # 3. The same command again finishes the sweep.
    done = subprocess.run(command, env={**os.environ, "RAY_TMPDIR": str(temp_dir)}, capture_output=True, text=True,
                          timeout=400)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    calls = _calls(tmp_path)
    assert calls.count("stage-done") == 1  # the stage was not rebuilt
    for trial_id in recorded:  # recorded trials were not trained again
        assert calls.count(f"trial-done {trial_id}") == 1, calls
    runs = _runs(tmp_path)
    children = [r for r in runs if "trial_id" in r.data.tags]
    parents = [r for r in runs if "trial_id" not in r.data.tags]
    assert len(parents) == 1 and len(children) == 3  # half-logged runs completed, none duplicated
    assert all(r.data.tags.get("trial_complete") == "1" for r in children)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.metrics["value"] for r in children} == {101.0, 102.0, 103.0}


def _build_slowly(root: str, log: str) -> str:
    def build(out: Path) -> dict:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(1.5)
        (out / "x.json").write_text(json.dumps({"ok": True}))
        return {}

    return str(run_stage("data", {"v": 1}, build, Path(root)).path)


def test_two_builders_of_one_stage_build_it_once(tmp_path):
    log = tmp_path / "builds.txt"
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        paths = pool.starmap(_build_slowly, [(str(tmp_path), str(log)), (str(tmp_path), str(log))])
    assert len(log.read_text().splitlines()) == 1  # one built, the other waited on the lock and reused it
    assert paths[0] == paths[1] and find_complete(tmp_path, "data", Path(paths[0]).name) is not None


def _broken_stage(out: Path, config, inputs) -> dict:
    raise RuntimeError("the corpus file is missing")


def test_a_failing_stage_prints_what_failed_and_where_the_log_is(tmp_path, capfd, ray_token_auth):
    def build(args):
        return Sweep(
            name="broken",
            grid=Grid(base={"a": 1}),
            train=lambda ctx: {},
            stages=[Stage("corpus", _broken_stage, resources=Resources(cpu=1))],
            resources=Resources(cpu=1),
        )

    argv = [
        "--storage-path",
        str(tmp_path / "st"),
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'm.db'}",
        "--num-cpus",
        "2",
    ]
    assert main(build, argv) == 1
    err = capfd.readouterr().err
    assert "error: the sweep stopped" in err and "the corpus file is missing" in err
    assert "stage corpus" in err and "(needed by a=1 seed=0)" in err  # which instance, of which point
    log_path = next((tmp_path / "st").glob("*/sweep.log"))
    assert str(log_path) in err and "Traceback" in log_path.read_text()
