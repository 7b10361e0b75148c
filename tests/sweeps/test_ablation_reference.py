"""A test's `reference:` in a preset (`alice`, `bob-base`) resolved to the trial's model folder by the sweep."""

from __future__ import annotations

import types

import pytest
import sweeps_testlib  # noqa: F401  (import paths)

from sweeps.audits.radioactivity.config import load_preset
from sweeps.audits.radioactivity.steps import Steps


def test_a_tests_reference_name_becomes_the_trials_model_folder() -> None:
    steps = Steps(load_preset("tiny"), key_file=None)
    metrics = {"mix_dir": "/m", "base_a": "/models/a", "base_b": "/models/b"}
    outcome = types.SimpleNamespace(metrics=metrics, params={"seed": 0})
    tasks = [t for t in steps.tasks(outcome) if t.get("setting") == "open-ref"]
    assert tasks and {t["reference"] for t in tasks} == {"/models/b"}  # the tiny preset's `reference: bob-base`
    assert {t.get("key", "correct") for t in tasks} == {"correct", "wrong"}
    bob = {"name": "x", "setting": "open-ref", "reference": "bob-base"}
    assert Steps._resolve_reference({**bob, "reference": "alice"}, metrics)["reference"] == "/models/a"
    assert Steps._resolve_reference({**bob, "reference": "/elsewhere"}, metrics)["reference"] == "/elsewhere"
    with pytest.raises(ValueError, match="reference: 'alice' unknown to this trial"):
        Steps._resolve_reference({**bob, "reference": "alice"}, {"base_b": "/models/b"})
