"""The cached stage: one folder per (config, inputs), reused on the next call, resumed after a crash."""

from __future__ import annotations

import json
import time
from pathlib import Path

from finetune_helpers import tiny_cfg

from radio.cache import MANIFEST, config_hash
from radio.inputs import input_digest
from radio.train import finetune, finetune_stage
from radio.train.result import METRICS_FILE
from radio.train.stage import stage_config


def test_stage_is_built_once_then_reused(toy_base: Path, toy_data: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(max_steps=3, zero_stage=0)
    first = finetune_stage(cfg, toy_base, toy_data, root=tmp_path)
    assert not first.cached
    assert (first.path / MANIFEST).is_file() and (first.path / "config.json").is_file()
    assert (first.path / METRICS_FILE).is_file()
    assert first.manifest["counts"]["steps"] == 3
    assert sorted(p.name for p in (tmp_path / "finetune").iterdir() if not p.name.endswith(".lock")) == [
        first.hash
    ]  # no work folder left behind

    start = time.perf_counter()
    again = finetune_stage(tiny_cfg(max_steps=3, zero_stage=0, log_every_steps=5), toy_base, toy_data, tmp_path)
    assert again.cached and again.path == first.path  # logging settings do not change the hash
    assert time.perf_counter() - start < 5

    other = stage_config(tiny_cfg(max_steps=3, zero_stage=0, learning_rate=1e-3))
    inputs = {"base_model": input_digest(toy_base), "train_data": input_digest(toy_data)}
    assert config_hash(other, inputs) != first.hash


def test_crashed_stage_resumes_from_its_work_folder(toy_base: Path, toy_data: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(max_steps=4, zero_stage=0)
    digest = config_hash(
        stage_config(cfg), {"base_model": input_digest(toy_base), "train_data": input_digest(toy_data)}
    )
    work = tmp_path / "finetune" / f".work-{digest}"
    finetune(cfg, toy_base, toy_data, work, stop_after_steps=2)  # what a killed build leaves behind
    stage = finetune_stage(cfg, toy_base, toy_data, root=tmp_path)
    assert stage.hash == digest and not work.exists()
    result = json.loads((stage.path / METRICS_FILE).read_text())["result"]
    assert result["resumed_from_step"] == 2 and result["steps"] == 4
