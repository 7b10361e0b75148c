"""Helpers shared by the fine-tuning tests (imported by name: tests/conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from radio.train import FinetuneConfig
from radio.train.toy import pattern_answer

PATTERN_LOW, PATTERN_HIGH = 3, 35


def tiny_cfg(**overrides: Any) -> FinetuneConfig:
    """A fine-tune that takes seconds on the toy model: CPU, fp32, small batches, a loss logged every step."""
    values: dict[str, Any] = {
        "learning_rate": 1e-2,
        "epochs": 4,
        "batch_size": 8,
        "max_seq_len": 64,
        "lr_schedule": "linear",
        "warmup_ratio": 0.1,
        "zero_stage": 1,
        "device": "cpu",
        "log_every_steps": 1,
        "seed": 0,
    }
    values.update(overrides)
    return FinetuneConfig(**values)


def load_model(folder: Path) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    return model


def pattern_accuracy(model: Any, n: int = 32, seed: int = 1234, prompt_len: int = 8, answer_len: int = 16) -> float:
    """Next-token accuracy on held-out prompts whose answers follow `pattern_answer` (teacher forcing)."""
    rng = random.Random(seed)
    hits = total = 0
    rows = []
    for _ in range(n):
        prompt = [rng.randrange(PATTERN_LOW, PATTERN_HIGH) for _ in range(prompt_len)]
        rows.append(prompt + pattern_answer(prompt, answer_len, PATTERN_LOW, PATTERN_HIGH))
    ids = torch.tensor(rows)
    with torch.no_grad():
        predicted = model(input_ids=ids).logits.argmax(-1)
    # position t predicts token t+1; score the predictions of answer tokens 2.. (each follows the pattern)
    for t in range(prompt_len, prompt_len + answer_len - 1):
        hits += int((predicted[:, t] == ids[:, t + 1]).sum())
        total += n
    return hits / total


def logits(model: Any, seed: int = 7) -> torch.Tensor:
    ids = torch.randint(PATTERN_LOW, PATTERN_HIGH, (2, 12), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(input_ids=ids).logits
