"""Pre-training loop: the loss falls, a seed fixes the result, and a stage build sees its progress."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radio.models import PretrainConfig, build_model, evaluate_loss, pretrain
from stagestore import PROGRESS_ENV


def test_loss_falls_and_is_reproducible() -> None:
    # A repetitive stream: learnable in a few steps.
    stream = torch.tensor(list(range(3, 40)) * 40)
    cfg = PretrainConfig(steps=25, batch_size=8, block_size=32, lr=1e-2, warmup_steps=2, eval_batches=2, num_threads=1)
    model = build_model("tiny-0.5m", vocab_size=64, seed=0)
    threads = torch.get_num_threads()
    before = evaluate_loss(model, stream, 32, max_batches=2)
    stats = pretrain(model, stream, cfg, seed=0, heldout=stream)
    assert stats["heldout_loss"] < before - 1.0
    assert stats["tokens_seen"] == 25 * 8 * 32 and stats["tokens_per_s"] > 0
    assert torch.get_num_threads() == threads  # restored
    again = build_model("tiny-0.5m", vocab_size=64, seed=0)
    assert pretrain(again, stream, cfg, seed=0)["train_loss"] == stats["train_loss"]


def test_progress_reaches_the_running_stage_builds_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = tmp_path / "progress.log"
    monkeypatch.setenv(PROGRESS_ENV, str(live))  # as the sweep engine sets it around a stage build
    stream = torch.tensor(list(range(3, 40)) * 20)
    cfg = PretrainConfig(steps=5, batch_size=4, block_size=16, warmup_steps=1, eval_batches=1, num_threads=1)
    pretrain(build_model("tiny-0.5m", vocab_size=64, seed=0), stream, cfg, seed=0, desc="base A")
    lines = live.read_text().splitlines()
    assert lines[0].startswith("base A: step 1/5 loss ")  # the first step, then at most one line per 15 s
    assert lines[-1].startswith("base A: step 5/5 loss ") and lines[-1].endswith("ETA 0s")
    assert len(lines) == 2
