"""The paraphrase axis of the ablation sweep: grid checks, the rewrite stage's plan, and its pointer at strength 0."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import sweeps_testlib  # noqa: F401  (import paths)

from sweeps.audits.radioactivity.config import load_preset
from sweeps.audits.radioactivity.steps import Steps, read_pointer
from sweeps.audits.radioactivity.sweep import _grid, build_sweep
from sweeps.engine import ConfigError, StagePlan


def test_the_grid_takes_paraphrase_strengths_in_zero_one() -> None:
    grid = _grid(load_preset("tiny")).with_overrides("rho=1 paraphrase=0,0.5")
    assert grid.base["paraphrase"] == 0.0 and grid.varied_axes() == ["paraphrase"]
    assert sorted({t.params["paraphrase"] for t in grid.trials()}) == [0.0, 0.5]
    with pytest.raises(ConfigError, match=r"axis paraphrase: invalid value 1\.5"):
        _grid(load_preset("tiny")).with_overrides("paraphrase=0,1.5")
    with pytest.raises(ConfigError, match="axis paraphrase"):
        _grid(load_preset("tiny")).with_overrides("paraphrase=-0.1")


def test_one_rewrite_per_strength_and_none_for_the_base_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADIO_WATERMARK_KEY", "paraphrase-plan-test-key-0123456789")
    sweep = build_sweep(argparse.Namespace(preset="tiny", key_file=None, dry_run=True))
    trials = sweep.grid.with_overrides("rho=1 paraphrase=0,0.5,1").trials()
    plan = StagePlan(sweep.stages, trials, sweep.constants, tmp_path)
    rewrites = plan.by_stage()["rewrite"]
    assert sorted(i.config["paraphrase"] for i in rewrites) == [0.0, 0.5, 1.0]
    base_model = [t for t in trials if t.params["epochs"] == 0]
    assert base_model and "rewrite" not in plan.per_trial[base_model[0].trial_id]
    assert all("rewrite" in plan.per_trial[t.trial_id] for t in trials if t.params["epochs"] != 0)


def test_strength_zero_points_at_the_mix_train_split_without_a_copy(tmp_path: Path) -> None:
    mix_stage, out = tmp_path / "mix-stage", tmp_path / "rewrite" / "abc"
    mix_stage.mkdir()
    out.mkdir(parents=True)
    (mix_stage / "stage.json").write_text(json.dumps({"mix": str(tmp_path / "mix")}))
    steps = Steps(load_preset("tiny"), key_file=None)
    steps.build_rewrite(out, {"paraphrase": 0.0}, {"mix": mix_stage, "bob": tmp_path / "unused"})
    assert read_pointer(out) == {"train": str(tmp_path / "mix" / "train"), "paraphrase": 0.0}
    assert sorted(p.name for p in out.iterdir()) == ["stage.json"]
