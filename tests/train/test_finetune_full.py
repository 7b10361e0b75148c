"""Full fine-tuning through DeepSpeed ZeRO on CPU: the loss falls, the checkpoint reloads, the pattern is learned."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from finetune_helpers import load_model, logits, pattern_accuracy, tiny_cfg

from radio.train import FinetuneResult, finetune
from radio.train.result import METRICS_FILE, loss_decreased


@pytest.fixture(scope="module")
def full_run(toy_base: Path, toy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> FinetuneResult:
    out = tmp_path_factory.mktemp("full") / "model"
    return finetune(tiny_cfg(zero_stage=1), toy_base, toy_data, out)


def test_loss_decreases_and_metrics_are_saved(full_run: FinetuneResult) -> None:
    assert full_run.completed
    assert full_run.steps == full_run.max_steps == 4 * 64 // 8
    assert loss_decreased(full_run)
    assert full_run.final_loss < 0.5 * full_run.loss_curve[0][1]
    assert full_run.trainable_params == full_run.total_params > 0
    assert full_run.tokens_per_s > 0 and full_run.wall_time_s > 0
    assert full_run.train_tokens == 4 * 64 * (8 + 16 + 1)  # 4 epochs of prompt + answer + EOS, no padding
    metrics = json.loads((full_run.checkpoint_dir / METRICS_FILE).read_text())
    assert metrics["deepspeed"]["zero_optimization"]["stage"] == 1
    assert "optimizer" not in metrics["deepspeed"]  # a torch optimizer, not DeepSpeed's compiled ones
    assert len(metrics["result"]["loss_curve"]) == full_run.steps
    assert FinetuneResult.load(full_run.checkpoint_dir) == full_run
    assert not (full_run.checkpoint_dir / "checkpoints").exists()  # Trainer checkpoints removed once done


def test_checkpoint_reloads_and_differs_from_base(full_run: FinetuneResult, toy_base: Path) -> None:
    base, tuned = load_model(toy_base), load_model(full_run.checkpoint_dir)
    assert type(tuned).__name__ == "LlamaForCausalLM"
    assert not torch.allclose(logits(base), logits(tuned), atol=1e-3)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(full_run.checkpoint_dir).eos_token == "<eos>"


def test_model_learns_the_training_pattern(full_run: FinetuneResult, toy_base: Path) -> None:
    base_acc = pattern_accuracy(load_model(toy_base))
    tuned_acc = pattern_accuracy(load_model(full_run.checkpoint_dir))
    assert base_acc < 0.1
    assert tuned_acc > 0.6, (base_acc, tuned_acc)


def test_completed_folder_is_reused_not_retrained(full_run: FinetuneResult, toy_base: Path, toy_data: Path) -> None:
    start = time.perf_counter()
    again = finetune(tiny_cfg(zero_stage=1), toy_base, toy_data, full_run.checkpoint_dir)
    assert again == full_run
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize(
    "zero_stage", [pytest.param(None, marks=pytest.mark.slow), 2, pytest.param(3, marks=pytest.mark.slow)]
)
def test_other_zero_stages_train(zero_stage: int | None, toy_base: Path, toy_data: Path, tmp_path: Path) -> None:
    result = finetune(tiny_cfg(zero_stage=zero_stage, epochs=1), toy_base, toy_data, tmp_path / "model")
    assert result.completed and loss_decreased(result)
    assert not torch.allclose(logits(load_model(toy_base)), logits(load_model(tmp_path / "model")), atol=1e-3)
