"""Grid declaration: one-at-a-time vs Cartesian counts, dedup, stable ids, CLI overrides, validation."""

from __future__ import annotations

import argparse
import re

import pytest
import sweeps_testlib  # noqa: F401  (import paths)

from sweeps.engine import ConfigError, Grid, Resources, Sweep, add_arguments, apply_args, parse_overrides, trial_id_of

PAPER_BASE = {"rho": 0.05, "lr": 1e-4, "epochs": 2, "size": "small", "k": 2}
PAPER_AXES = {
    "rho": [0.0, 0.01, 0.05, 0.1, 0.5, 1.0],
    "lr": [1e-5, 1e-4, 1e-3],
    "epochs": [1, 2, 4],
    "size": ["small", "large"],
    "k": [1, 2, 4, 8],
}


def _check_rho(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be in [0, 1]")


def paper_grid(**kwargs) -> Grid:
    return Grid(base=PAPER_BASE, vary=PAPER_AXES, checks={"rho": _check_rho}, **kwargs)


def test_paper_grid_counts():
    assert len(paper_grid(mode="cartesian").points()) == 6 * 3 * 3 * 2 * 4 == 432
    # one at a time: the base point plus every non-base value of every axis: 1 + 5 + 2 + 2 + 1 + 3
    assert len(paper_grid().points()) == 14
    assert len(paper_grid(seeds=(0, 1, 2)).trials()) == 42
    assert len(paper_grid(mode="cartesian", seeds=(0, 1)).trials()) == 864


def test_one_at_a_time_varies_one_axis_and_starts_at_base():
    points = paper_grid().points()
    assert points[0] == PAPER_BASE
    for point in points[1:]:
        assert sum(point[k] != PAPER_BASE[k] for k in PAPER_BASE) == 1


def test_dedup_and_deterministic_ids():
    grid = Grid(
        base={"a": 1, "b": "x"},
        vary={"a": [1, 1, 2], "b": ["x"]},
        include=[{"a": 2}, {"b": "x"}],
        seeds=(0, 0, 1),
    )
    points = grid.points()
    assert points == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    trials = grid.trials()
    assert len(trials) == 4 and len({t.trial_id for t in trials}) == 4
    again = Grid(base={"b": "x", "a": 1}, vary={"a": [2]}, seeds=(0, 1)).trials()
    assert {t.trial_id for t in again} == {t.trial_id for t in trials}
    assert trials[0].trial_id == trial_id_of({"a": 1, "b": "x", "seed": 0})
    # the two seeds of a point share its point id
    assert trials[0].point_id == trials[1].point_id != trials[2].point_id


def test_adding_an_axis_at_its_inert_value_keeps_every_trial_id():
    before = Grid(base={"rho": 0.0}, vary={"rho": [0.5, 1.0]}, seeds=(0, 1)).trials()
    after = Grid(
        base={"rho": 0.0, "purify_steps": 0},
        vary={"rho": [0.5, 1.0], "purify_steps": [50]},
        seeds=(0, 1),
        inert={"purify_steps": 0},
    ).trials()
    assert [t.trial_id for t in after[:6]] == [t.trial_id for t in before]
    assert [t.point_id for t in after[:6]] == [t.point_id for t in before]
    assert after[0].params == {"rho": 0.0, "purify_steps": 0, "seed": 0}  # recorded in full, hashed without it
    assert {t.trial_id for t in after[6:]}.isdisjoint(t.trial_id for t in before)  # a value off the inert one
    with pytest.raises(ConfigError, match="inert"):
        Grid(base={"rho": 0.0}, inert={"paraphrase": 0.0})


def test_int_and_float_values_hash_alike_after_coercion():
    a = Grid(base={"rho": 0.0}, vary={"rho": [0, 1]}).trials()
    b = Grid(base={"rho": 0.0}, vary={"rho": [0.0, 1.0]}).trials()
    assert [t.trial_id for t in a] == [t.trial_id for t in b]


def test_overrides():
    grid = paper_grid().with_overrides("rho=0,0.5,1 lr=1e-4 seed=0,1")
    assert grid.vary["rho"] == (0.0, 0.5, 1.0)
    assert grid.base["rho"] == 0.0  # the base value 0.05 is not among the new values: the first one is
    assert "lr" not in grid.vary and grid.base["lr"] == 1e-4
    assert grid.seeds == (0, 1)
    # 1 base + 2 rho + 2 epochs + 1 size + 3 k, two seeds
    assert len(grid.trials()) == 2 * (1 + 2 + 2 + 1 + 3)
    listed = paper_grid().with_overrides(["k=2", "size=large"])
    assert listed.base["k"] == 2 and listed.base["size"] == "large" and "k" not in listed.vary
    assert parse_overrides("a=1,2 b=x") == [("a", ["1", "2"]), ("b", ["x"])]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lrr=1e-4", "unknown axis 'lrr'"),
        ("rho=2", "axis rho: invalid value 2.0"),
        ("rho=abc", "axis rho: 'abc' is not a number"),
        ("epochs=1.5", "axis epochs: '1.5' is not an integer"),
        ("seed=a", "axis seed"),
        ("rho", "expected AXIS=VALUE"),
        ("rho=0,,1", "expected AXIS=VALUE"),
    ],
)
def test_invalid_overrides_name_the_axis(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        paper_grid().with_overrides(override)


def test_invalid_declarations():
    with pytest.raises(ConfigError, match="unknown axis"):
        Grid(base={"a": 1}, vary={"b": [1]})
    with pytest.raises(ConfigError, match=r"axis rho: invalid value 3\.0"):
        Grid(base={"rho": 0.0}, vary={"rho": [0.0, 3.0]}, checks={"rho": _check_rho})
    with pytest.raises(ConfigError, match="replication axis"):
        Grid(base={"seed": 1})
    with pytest.raises(ConfigError, match="mode"):
        Grid(base={"a": 1}, mode="grid")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"resources\.cpu"):
        Resources(cpu=-1)


def test_trials_that_fit_the_cluster_after_the_evaluation_actors():
    from sweeps.engine.resources import trials_that_fit

    laptop = {"CPU": 2.0}
    one_core = Resources(cpu=0.01, workers=1, cpu_per_worker=1)
    three_quarters = Resources(cpu=0.01, workers=1, cpu_per_worker=0.74)
    assert trials_that_fit(one_core, laptop, {"CPU": 0.5})[0] == 1  # 1.5 free / 1.01
    count, why = trials_that_fit(three_quarters, laptop, {"CPU": 0.5})
    assert count == 2 and why == "1.5 CPU free / 0.75 CPU per trial (0.01 + 1 worker x 0.74)"
    gpu_trial = Resources(cpu=1, workers=2, cpu_per_worker=4, gpu_per_worker=1)
    assert trials_that_fit(gpu_trial, {"CPU": 64.0, "GPU": 8.0}, {"CPU": 2.0, "GPU": 1.0})[0] == 3  # 7 GPUs / 2
    assert trials_that_fit(Resources(cpu=4), laptop)[0] == 1  # never 0: a trial too big still gets its turn


def test_cli_applies_overrides_and_cartesian():
    parser = add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--cartesian", "--dry-run", "rho=0,1", "k=1,2"])
    sweep = Sweep(name="toy", grid=paper_grid(), train=lambda ctx: {})
    applied = apply_args(sweep, args)
    assert applied.grid.mode == "cartesian"
    assert len(applied.grid.points()) == 2 * 3 * 3 * 2 * 2
    assert sweep.sweep_id() != applied.sweep_id()
    assert sweep.sweep_id() == Sweep(name="toy", grid=paper_grid(), train=lambda ctx: {}).sweep_id()


def test_main_dry_run_and_rejections(tmp_path, capsys):
    from sweeps.engine import main

    def build(args):
        return Sweep(name="toy", grid=paper_grid(), train=lambda ctx: {})

    common = ["--storage-path", str(tmp_path / "st"), "--cache-root", str(tmp_path / "c")]
    assert main(build, ["--dry-run", "rho=0,1", *common]) == 0
    out = capsys.readouterr().out
    assert "sweep toy: id toy-" in out and "trial(s)" in out and "base seed=0" in out and "rho=1 seed=0" in out
    assert main(build, ["--dry-run", "lrr=1", *common]) == 2
    assert "unknown axis 'lrr'" in capsys.readouterr().err
    assert main(build, ["--dry-run", "rho=7", *common]) == 2
    assert "axis rho: invalid value 7.0" in capsys.readouterr().err


def test_local_token_file_is_private(tmp_path, monkeypatch):
    from sweeps.engine.ray_session import ensure_local_token as _ensure_local_token

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    _ensure_local_token()
    token = tmp_path / ".ray" / "auth_token"
    assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text()) == 64
    before = token.read_text()
    _ensure_local_token()  # kept, never replaced
    assert token.read_text() == before
    token.unlink()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    _ensure_local_token()
    assert not token.exists()
