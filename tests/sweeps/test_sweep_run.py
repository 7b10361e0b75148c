"""End to end on a local 2-CPU Ray: Tune trials (one running a Ray Train TorchTrainer), shared stages,
evaluation actors, MLflow parent/child runs, tables and plots; rerun and resume; a worker that dies."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import sweeps_testlib

from sweeps.engine import (
    CHECKPOINT_KEY,
    Evaluation,
    Grid,
    Report,
    Resources,
    RunOptions,
    Stage,
    Sweep,
    TrialContext,
    run,
)
from sweeps.engine.tables import aggregate, line_plot

ray_session = sweeps_testlib.ray_session
SECRET = "s3cr3t-key-material-that-must-never-be-logged"


def _append(path: Path, line: str) -> None:
    with open(path, "a") as handle:
        handle.write(line + "\n")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def torch_worker_loop(config: dict) -> None:
    """A tiny Ray Train loop: fits y = 2x with one linear layer, checkpoints each epoch."""
    import ray.train
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.linspace(-1, 1, 32).unsqueeze(1)
    for epoch in range(config["epochs"]):
        loss = torch.nn.functional.mse_loss(model(x), 2 * x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with tempfile.TemporaryDirectory() as folder:
            torch.save(model.state_dict(), os.path.join(folder, "model.pt"))
            ray.train.report(
                {"epoch": epoch, "loss": float(loss)}, checkpoint=ray.train.Checkpoint.from_directory(folder)
            )


def make_sweep(workdir: Path, name: str = "toy") -> Sweep:
    calls = workdir / "train_calls.txt"
    stage_calls = workdir / "stage_calls.txt"

    def build_data(out: Path, config, inputs) -> dict:
        _append(stage_calls, json.dumps(config, sort_keys=True))
        (out / "value.json").write_text(json.dumps({"offset": 10 if config["b"] == "y" else 0}))
        return {"n": 1}

    def train(ctx: TrialContext) -> dict:
        _append(calls, ctx.trial_id)
        offset = json.loads((ctx.stages["data"] / "value.json").read_text())["offset"]
        value = ctx.params["a"] * 10 + offset + ctx.params["seed"]
        result: dict = {"value": value}
        if ctx.params["b"] == "y" and ctx.params["seed"] == 0:
            trained = ctx.torch_trainer(torch_worker_loop, {"epochs": 3}).fit()
            result["torch_loss"] = trained.metrics["loss"]
            result["torch_checkpoint"] = trained.checkpoint.path
        out = Path(ctx.storage_path) / "outputs" / ctx.trial_id
        out.mkdir(parents=True, exist_ok=True)
        (out / "state.json").write_text(json.dumps({"value": value}))
        result[CHECKPOINT_KEY] = str(out)
        return result

    def load(ctx) -> dict:
        return json.loads((Path(ctx.checkpoint) / "state.json").read_text())

    def evaluate(loaded: dict, task) -> dict:
        return {"score": loaded["value"] * task["scale"], "pid": os.getpid()}

    def report(frame, grid) -> Report:
        main = frame[frame["task"] == "main"]
        table = aggregate(main, ["a", "b"], "score")
        return Report(
            tables={"score_by_point": table},
            figures={"score_vs_a": line_plot(main, "a", "score", hue="b")},
            console=("score_by_point",),
        )

    return Sweep(
        name=name,
        grid=Grid(base={"a": 1, "b": "x"}, vary={"a": [1, 2], "b": ["x", "y"]}, seeds=(0, 1)),
        train=train,
        stages=[Stage("data", build_data, depends_on=("b",), resources=Resources(cpu=1))],
        evaluation=Evaluation(
            load=load,
            tasks=lambda outcome: [{"task": "main", "scale": 1}, {"task": "control", "scale": 0}],
            run=evaluate,
            actors=1,
            resources=Resources(cpu=0.5),
            summarize=lambda rows: {"main_score": sum(r["score"] for r in rows if r["task"] == "main")},
        ),
        report=report,
        resources=Resources(cpu=0.5, workers=1, cpu_per_worker=1),
        constants={"key_fingerprint": "ab12cd34"},
        secrets=[SECRET],
    )


def _options(workdir: Path, db: str = "mlflow.db") -> RunOptions:
    return RunOptions(
        storage_path=str(workdir / "storage"),
        cache_root=str(workdir / "cache"),
        tracking_uri=f"sqlite:///{workdir / db}",
        max_concurrent_trials=2,
        max_failures=2,
        verbose=0,
    )


def _runs(uri: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_local_ray_workers_keep_the_driver_priority(ray_session):
    # Ray's default worker niceness (15) starved a sweep's training workers on a shared machine.
    @ray_session.remote(num_cpus=0)
    def niceness() -> int:
        return os.nice(0)

    assert ray_session.get(niceness.remote()) == os.nice(0)


@pytest.mark.slow
def test_sweep_end_to_end_rerun_and_restore(ray_session, tmp_path, capfd):
    sweep = make_sweep(tmp_path)
    trials = sweep.trials()
    assert len(trials) == 6  # (1,x) (2,x) (1,y) x 2 seeds
    options = _options(tmp_path)

    first = run(sweep, options)
    assert sorted(first.trained) == sorted(t.trial_id for t in trials)
    assert all(o.error is None for o in first.outcomes), [o.error for o in first.outcomes]
    assert first.stages is not None and first.stages.misses == 2 and first.stages.hits == 0
    assert len(_lines(tmp_path / "stage_calls.txt")) == 2  # one build per distinct b
    assert sorted(_lines(tmp_path / "train_calls.txt")) == sorted(t.trial_id for t in trials)
    torch_outcome = next(o for o in first.outcomes if o.params["b"] == "y" and o.params["seed"] == 0)
    assert torch_outcome.metrics["torch_loss"] < 4.0
    assert Path(torch_outcome.metrics["torch_checkpoint"], "model.pt").is_file()
    for outcome in first.outcomes:
        offset = 10 if outcome.params["b"] == "y" else 0
        assert {r["task"]: r["score"] for r in outcome.rows} == {
            "main": outcome.params["a"] * 10 + offset + outcome.params["seed"],
            "control": 0,
        }
    assert "score_by_point:" in capfd.readouterr().out
    assert (Path(options.storage_path) / sweep.sweep_id() / "sweep.log").is_file()

    uri = options.tracking_uri
    runs = _runs(uri, "toy")
    parents = [r for r in runs if "trial_id" not in r.data.tags]
    children = [r for r in runs if "trial_id" in r.data.tags]
    assert len(parents) == 1 and len(children) == len(trials)
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {c.data.tags["trial_id"] for c in children} == {t.trial_id for t in trials}
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(c.data.tags["trial_complete"] == "1" for c in children)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    tables = {f.path for f in client.list_artifacts(parent.info.run_id, "tables")}
    assert {"tables/score_by_point.json", "tables/score_by_point.csv", "tables/score_by_point.md"} <= tables
    assert "plots/score_vs_a.png" in {f.path for f in client.list_artifacts(parent.info.run_id, "plots")}
    child = children[0]
    assert "main_score" in child.data.metrics and child.data.params["a"] in ("1", "2")
    assert child.info.run_name == child.data.tags["label"] and "seed=" in child.info.run_name
    assert "tables/evaluations.json" in {f.path for f in client.list_artifacts(child.info.run_id, "tables")}
    table = client.load_table(parent.info.experiment_id, "tables/score_by_point.json", [parent.info.run_id])
    assert len(table) == 3

    # The same command again: nothing retrained, no new runs, the table replaced (not appended).
    second = run(sweep, options)
    assert second.trained == [] and second.stages is None
    assert len(_lines(tmp_path / "train_calls.txt")) == len(trials)
    assert len(_runs(uri, "toy")) == len(runs)
    assert len(second.outcomes) == len(trials)
    table = client.load_table(parent.info.experiment_id, "tables/score_by_point.json", [parent.info.run_id])
    assert len(table) == 3

    # A fresh MLflow store with the same Tune storage: Tune restores the finished experiment, so nothing is
    # retrained, and the driver records every trial from the restored results (stages are cache hits).
    third = run(sweep, _options(tmp_path, db="fresh.db"))
    assert third.trained == [] and len(_lines(tmp_path / "train_calls.txt")) == len(trials)
    assert third.stages is not None and third.stages.hits == 2 and third.stages.misses == 0
    assert len(_lines(tmp_path / "stage_calls.txt")) == 2
    fresh = _runs(f"sqlite:///{tmp_path / 'fresh.db'}", "toy")
    assert len(fresh) == len(trials) + 1
    assert all(o.error is None and o.rows for o in third.outcomes)

    # Nothing logged anywhere contains the registered secret.
    for db in ("mlflow.db", "fresh.db"):
        assert SECRET.encode() not in (tmp_path / db).read_bytes()


def crash_once_train(ctx: TrialContext) -> dict:
    """Checkpoints each step; the first attempt of seed 0 kills its own process after step 1."""
    marker = Path(ctx.constants["workdir"]) / f"killed-{ctx.trial_id}"
    attempts = Path(ctx.constants["workdir"]) / "attempts.txt"
    _append(attempts, ctx.trial_id)
    start = 0
    with ctx.checkpoint_dir() as folder:
        if folder is not None:
            start = json.loads((folder / "step.json").read_text())["step"] + 1
    for step in range(start, 4):
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "step.json").write_text(json.dumps({"step": step}))
            ctx.report({"step": step}, checkpoint_dir=folder)
        if step == 1 and ctx.params["seed"] == 0 and not marker.exists():
            marker.write_text("x")
            os._exit(1)  # the trial's worker process dies mid-run
    return {"resumed_from": start, "steps": 4}


def test_dead_worker_retried_from_checkpoint_recorded_once(ray_session, tmp_path):
    sweep = Sweep(
        name="crash",
        grid=Grid(base={"a": 1}, seeds=(0, 1)),
        train=crash_once_train,
        resources=Resources(cpu=1),
        constants={"workdir": str(tmp_path)},
    )
    options = _options(tmp_path)
    result = run(sweep, options)
    by_seed = {o.params["seed"]: o for o in result.outcomes}
    assert by_seed[0].error is None and by_seed[1].error is None
    assert by_seed[0].metrics["resumed_from"] == 2  # resumed after the step-1 checkpoint
    assert by_seed[1].metrics["resumed_from"] == 0
    killed = next(t.trial_id for t in sweep.trials() if t.params["seed"] == 0)
    assert (tmp_path / f"killed-{killed}").exists()
    assert _lines(tmp_path / "attempts.txt").count(killed) == 2
    runs = _runs(options.tracking_uri, "crash")
    children = [r for r in runs if "trial_id" in r.data.tags]
    assert len(runs) == 3 and len(children) == 2
    assert sorted(r.data.tags["trial_id"] for r in children) == sorted(t.trial_id for t in sweep.trials())
    assert all(r.info.status == "FINISHED" for r in runs)


def flaky_train(ctx: TrialContext) -> dict:
    """Raises while the file `broken` exists in the work dir (a bug that the user then fixes)."""
    if (Path(ctx.constants["workdir"]) / "broken").exists():
        raise RuntimeError("broken trial")
    return {"ok": 1}


def test_failed_trial_recorded_then_resumed_by_rerun(ray_session, tmp_path):
    (tmp_path / "broken").write_text("x")
    sweep = Sweep(
        name="flaky",
        grid=Grid(base={"a": 1}),
        train=flaky_train,
        resources=Resources(cpu=1),
        constants={"workdir": str(tmp_path)},
    )
    options = RunOptions(**{**_options(tmp_path).__dict__, "max_failures": 0})
    first = run(sweep, options)
    assert len(first.outcomes) == 1 and "broken trial" in first.outcomes[0].error
    runs = _runs(options.tracking_uri, "flaky")
    child = next(r for r in runs if "trial_id" in r.data.tags)
    parent = next(r for r in runs if "trial_id" not in r.data.tags)
    assert child.info.status == "FAILED" and "broken trial" in child.data.tags["error"]
    assert parent.info.status == "FAILED"

    (tmp_path / "broken").unlink()
    second = run(sweep, options)  # the same command: Tune resumes the errored trial
    assert second.outcomes[0].error is None and second.outcomes[0].metrics == {"ok": 1}
    runs = _runs(options.tracking_uri, "flaky")
    assert len(runs) == 2
    child = next(r for r in runs if "trial_id" in r.data.tags)
    assert child.info.status == "FINISHED" and "error" not in child.data.tags
    assert next(r for r in runs if "trial_id" not in r.data.tags).info.status == "FINISHED"
