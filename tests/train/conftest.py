"""Fixtures for the fine-tuning tests: a tiny Llama base model folder and a pattern dataset, built once."""

from __future__ import annotations

from pathlib import Path

import pytest
from finetune_helpers import PATTERN_HIGH, PATTERN_LOW

from radio.train.toy import build_toy_base, build_toy_dataset


@pytest.fixture(scope="session")
def toy_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer, 64-wide Llama with a 256-entry BPE tokenizer (tied embeddings)."""
    return build_toy_base(tmp_path_factory.mktemp("toy") / "base", size="toy-xs", vocab_size=256, seed=0)


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 examples whose answers count up by one from the last prompt token (ids in [3, 35))."""
    return build_toy_dataset(
        tmp_path_factory.mktemp("toy") / "data",
        n=64,
        prompt_len=8,
        answer_len=16,
        vocab_low=PATTERN_LOW,
        vocab_high=PATTERN_HIGH,
        seed=0,
    )
