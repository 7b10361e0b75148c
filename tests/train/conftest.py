"""Fixtures for the fine-tuning tests: a tiny Llama base model folder and a pattern dataset, built once."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def ray_cluster(ray_token_auth: None) -> Iterator[None]:
    """A local Ray instance of 2 CPUs for one test module (Ray Train workers import the project from the repo)."""
    ray = pytest.importorskip("ray")
    repo = Path(__file__).resolve().parents[2]
    python_path = os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": python_path, "TOKENIZERS_PARALLELISM": "false"}},
    )
    yield
    ray.shutdown()
