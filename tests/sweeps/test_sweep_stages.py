"""Shared stages: one build per distinct dependency, cache hits on a second run, dry-run output."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import sweeps_testlib  # noqa: F401  (import paths)

from sweeps.engine import ConfigError, Evaluation, Grid, Resources, RunOptions, Stage, StagePlan, Sweep, describe, run

CALLS: list[tuple[str, dict]] = []


def build_data(out: Path, config, inputs) -> dict:
    CALLS.append(("data", dict(config)))
    (out / "data.json").write_text(json.dumps(config))
    return {"rows": 1}


def build_mix(out: Path, config, inputs) -> dict:
    CALLS.append(("mix", dict(config)))
    assert (inputs["data"] / "data.json").is_file()
    (out / "mix.json").write_text(json.dumps({**config, "from": str(inputs["data"])}))
    return {}


def make_stages() -> list[Stage]:
    return [
        # data depends on (scheme, k) and the key fingerprint, not on lr or the seed
        Stage("data", build_data, depends_on=("scheme", "k", "key_fp"), resources=Resources(cpu=1)),
        # the mix also depends on rho; skipped for rho = 0
        Stage("mix", build_mix, depends_on=("rho",), needs=("data",), needed=lambda p: p["rho"] > 0),
    ]


GRID = Grid(
    base={"scheme": "kgw", "k": 2, "rho": 0.1, "lr": 1e-4},
    vary={"k": [1, 2, 4], "rho": [0.0, 0.1, 0.5], "lr": [1e-4, 1e-3], "scheme": ["kgw", "aaronson"]},
    seeds=(0, 1),
)


def test_stages_built_once_per_distinct_dependency(tmp_path):
    CALLS.clear()
    trials = GRID.trials()
    assert len(trials) == 2 * (1 + 2 + 2 + 1 + 1)
    plan = StagePlan(make_stages(), trials, {"key_fp": "abcd1234"}, tmp_path)
    # data: (kgw,1) (kgw,2) (kgw,4) (aaronson,2) -> 4 distinct, whatever lr, rho and seed are
    data = plan.by_stage()["data"]
    assert len(data) == 4
    assert sum(len(inst.trials) for inst in data) == len(trials)
    summary = plan.run("local")
    assert summary.misses == len(plan.instances) and summary.hits == 0
    assert sorted(c["k"] for s, c in CALLS if s == "data") == [1, 2, 2, 4]
    assert all(c["key_fp"] == "abcd1234" for s, c in CALLS if s == "data")
    # mix: per (data instance, rho) of trials with rho > 0
    n_mix = len({(t.params["scheme"], t.params["k"], t.params["rho"]) for t in trials if t.params["rho"] > 0})
    assert len([c for s, c in CALLS if s == "mix"]) == n_mix
    for trial in trials:
        folders = plan.per_trial[trial.trial_id]
        assert (folders["data"] / "manifest.json").is_file()
        assert ("mix" in folders) == (trial.params["rho"] > 0)
    manifest = json.loads((data[0].path / "manifest.json").read_text())
    assert manifest["config"] == data[0].config

    CALLS.clear()
    again = StagePlan(make_stages(), trials, {"key_fp": "abcd1234"}, tmp_path).run("local")
    assert CALLS == [] and again.hits == len(plan.instances) and again.misses == 0
    assert "cache hit(s)" in again.line()

    # another key fingerprint is another data set
    other = StagePlan(make_stages(), trials, {"key_fp": "ffff0000"}, tmp_path)
    assert not any(
        plan_inst.digest in {i.digest for i in plan.instances.values()} for plan_inst in other.by_stage()["data"]
    )


def test_stage_dependency_errors(tmp_path):
    trials = GRID.trials()
    with pytest.raises(ConfigError, match="neither a param nor a constant"):
        StagePlan([Stage("data", build_data, depends_on=("nope",))], trials, {}, tmp_path)
    with pytest.raises(ConfigError, match="not declared before"):
        StagePlan([Stage("mix", build_mix, needs=("data",))], trials, {}, tmp_path)


def _data_failing_at_k4(out: Path, config, inputs) -> dict:
    if config["k"] == 4:
        raise ValueError("the watermarked set has 1392 records\nsecond line")
    return build_data(out, config, inputs)


def test_a_failed_build_names_the_stage_instance_and_a_point_that_needs_it(tmp_path):
    from sweeps.engine.errors import StageBuildError

    stages = [Stage("data", _data_failing_at_k4, depends_on=("scheme", "k", "key_fp"))]
    plan = StagePlan(stages, GRID.trials(), {"key_fp": "abcd1234"}, tmp_path)
    expected = (
        r"^stage data \w+ \(needed by scheme=kgw k=4 rho=0.1 lr=0.0001 seed=0 and 1 more trial\(s\)\): "
        r"ValueError: the watermarked set has 1392 records$"
    )
    with pytest.raises(StageBuildError, match=expected):
        plan.run("local")


def test_dry_run_lists_trials_stages_resources(tmp_path, capsys):
    sweep = Sweep(
        name="toy",
        grid=GRID,
        train=lambda ctx: {},
        stages=make_stages(),
        resources=Resources(cpu=0.5, workers=1, cpu_per_worker=1, gpu_per_worker=1),
        constants={"key_fp": "abcd1234"},
        evaluation=Evaluation(load=lambda ctx: None, tasks=lambda o: [], run=lambda m, t: {}, actors=2),
    )
    options = RunOptions(storage_path=str(tmp_path / "st"), cache_root=str(tmp_path / "cache"), dry_run=True)
    text = describe(sweep, options)
    assert f"{len(GRID.trials())} trial(s)" in text
    assert "data: depends on ['scheme', 'k', 'key_fp']; 4 distinct, 0 cached" in text
    assert "1 Ray Train worker(s) x (1 CPU + 1 GPU)" in text
    assert "evaluation: 2 actor(s)" in text
    assert "its driver and 1 Ray Train worker(s)" in text and "one placement group" in text
    with pytest.raises(ConfigError, match=r"a trial needs 1 GPU .* but the cluster has 0 GPU"):
        run(sweep, dataclasses.replace(options, num_gpus=0))  # more than this machine: stops, naming the GPU
    result = run(sweep, dataclasses.replace(options, num_gpus=1))  # must not start Ray nor touch MLflow
    assert result.outcomes == [] and not (tmp_path / "mlflow.db").exists()
    assert "shared stages" in capsys.readouterr().out
    import ray

    assert not ray.is_initialized()
