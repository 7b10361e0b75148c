"""The engine as a second sweep uses it: evaluation only, chunks over 2 actors, killed midway and rerun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sweeps_testlib

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "toy_eval_sweep.py"
N_CHUNKS = 2 * 12  # 2 points x 1,200 tasks / 100 per chunk


def test_import_loads_neither_torch_nor_radio():
    code = (
        "import sys, sweeps.engine; "
        "bad = [m for m in ('torch', 'radio', 'ray', 'mlflow') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=HERE.parents[1], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _chunk_files(workdir: Path) -> list[Path]:
    return list((workdir / "mlartifacts").rglob("chunks/chunk-*.json"))


def _evaluated(workdir: Path) -> list[str]:
    path = workdir / "evaluated.txt"
    return path.read_text().splitlines() if path.exists() else []


def _table(client, run_id: str, name: str):
    """A table logged by the engine (MLflow's table JSON), read through this client's store."""
    import json
    import tempfile

    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, f"tables/{name}.json", tmp)
        data = json.loads(Path(path).read_text())
    return pd.DataFrame(data["data"], columns=data["columns"])


@pytest.mark.timeout(600)
def test_toy_sweep_killed_midway_redoes_only_unfinished_chunks(tmp_path, ray_token_auth):
    temp_dir = Path("/tmp") / f"rt{os.getpid()}"  # short: Ray's socket paths must stay under 108 bytes
    command = [sys.executable, str(SCRIPT), str(tmp_path)]
    proc = sweeps_testlib.start_sweep_process(command, temp_dir)
    sweeps_testlib.wait_for(lambda: len(_chunk_files(tmp_path)) >= 4, 300, proc)
    assert proc.poll() is None, proc.stdout.read().decode()[-3000:] if proc.stdout else ""
    sweeps_testlib.kill_sweep_process(proc, temp_dir)
    recorded = set(_chunk_files(tmp_path))
    assert 4 <= len(recorded) < N_CHUNKS
    first_lines = len(_evaluated(tmp_path))

    env = {**os.environ, "RAY_TMPDIR": str(temp_dir)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    redone = len(_evaluated(tmp_path)) - first_lines
    assert redone == (N_CHUNKS - len(recorded)) * 100  # exactly the chunks that were not recorded
    assert "toy-eval" in done.stdout and "2 trial(s) complete" in done.stdout
    assert len(done.stdout.splitlines()) < 30  # the live view only; Ray's output went to the log file

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("toy-eval")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "trial_id" not in r.data.tags)
    children = [r for r in runs if "trial_id" in r.data.tags]
    assert len(children) == 2 and all(c.data.tags["trial_complete"] == "1" for c in children)
    assert {c.info.run_name for c in children} == {"base seed=0", "scale=2 seed=0"}
    assert all(set(c.data.metrics) == {"mean_score"} for c in children)  # rows go to tables, not metrics
    table = _table(client, parent.info.run_id, "score_by_prompt")
    assert len(table) == 8 and set(table["n"]) == {300}
    parent_files = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert "overview.png" in parent_files
    images = [f.path for f in client.list_artifacts(children[0].info.run_id, "files/images")]
    assert len(images) == 4 and all(p.endswith(".png") for p in images)
    evaluations = _table(client, children[0].info.run_id, "evaluations")
    assert len(evaluations) == 1200
