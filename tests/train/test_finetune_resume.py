"""Resume: a run interrupted after a Trainer checkpoint continues from it and ends where an uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from finetune_helpers import load_model, tiny_cfg

from radio.train import FinetuneError, finetune
from radio.train.result import METRICS_FILE


def test_interrupted_run_resumes_from_checkpoint(toy_base: Path, toy_data: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(zero_stage=1, epochs=2)  # 16 steps, a checkpoint per epoch
    out = tmp_path / "resumed"
    first = finetune(cfg, toy_base, toy_data, out, stop_after_steps=5)
    assert not first.completed and first.steps == 5
    assert (out / "checkpoints" / "checkpoint-5" / "trainer_state.json").is_file()
    assert not (out / METRICS_FILE).exists() and not (out / "config.json").exists()  # nothing looks complete

    resumed = finetune(cfg, toy_base, toy_data, out)
    assert resumed.completed and resumed.resumed_from_step == 5 and resumed.steps == 16

    straight = finetune(cfg, toy_base, toy_data, tmp_path / "straight")
    assert resumed.train_tokens == straight.train_tokens
    assert [s for s, _ in resumed.loss_curve] == [s for s, _ in straight.loss_curve]
    for (_, a), (_, b) in zip(resumed.loss_curve, straight.loss_curve, strict=True):
        assert a == pytest.approx(b, rel=1e-3, abs=1e-4)
    a, b = load_model(out).state_dict(), load_model(tmp_path / "straight").state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4)


def test_folder_of_another_config_is_refused(toy_base: Path, toy_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    finetune(tiny_cfg(zero_stage=None, max_steps=2), toy_base, toy_data, out, stop_after_steps=1)
    with pytest.raises(FinetuneError, match="another config"):
        finetune(tiny_cfg(zero_stage=None, max_steps=2, learning_rate=1e-3), toy_base, toy_data, out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FinetuneError, match="not a fine-tune folder"):
        finetune(tiny_cfg(), toy_base, toy_data, tmp_path / "other")
