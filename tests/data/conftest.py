"""Fixtures for the data-pipeline tests: one tiny prepare (small corpus, few steps) and its generated sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
import pytest

from radio.cache import StageOutput
from radio.data import (
    CorpusConfig,
    GenerateConfig,
    PrepareConfig,
    Prepared,
    TokenizerConfig,
    generate_sets,
    prepare,
)
from radio.data.generate import FEATURES
from radio.models import PretrainConfig

KEY = b"test-key-6f1d2c9a41b7e0355a"


def tiny_prepare_config() -> PrepareConfig:
    """Small enough for a unit test: 150 documents, 512-entry tokenizer, 6 steps of the smallest preset."""
    return PrepareConfig(
        corpus=CorpusConfig(max_docs=150),
        tokenizer=TokenizerConfig(vocab_size=512),
        preset="tiny-0.5m",
        pretrain=PretrainConfig(steps=6, batch_size=4, block_size=32, warmup_steps=2, eval_batches=1, num_threads=1),
        workers=1,  # in-process: no spawn start-up; the two-process path has its own test
    )


def tiny_generate_config(**overrides: object) -> GenerateConfig:
    """48 watermarked and 24 plain prompts of 12 tokens, answers of at most 16 tokens."""
    settings: dict = dict(
        n_watermarked=48, n_plain=24, prompt_tokens=12, max_new_tokens=16, batch_size=24, min_answer_tokens=1
    )
    settings.update(overrides)
    return GenerateConfig(**settings)


@dataclass(frozen=True)
class Generated:
    """The tiny pipeline run shared by the generation, mix and CLI tests."""

    root: Path
    prepared: Prepared
    watermarked: StageOutput
    plain: StageOutput


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache root for the session's tiny pipeline."""
    return tmp_path_factory.mktemp("radio-cache")


@pytest.fixture(scope="session")
def prepared(cache_root: Path) -> Prepared:
    """Corpus, tokenizer and two tiny bases, built once per session."""
    return prepare(tiny_prepare_config(), cache_root)


@pytest.fixture(scope="session")
def generated(cache_root: Path, prepared: Prepared) -> Generated:
    """Watermarked and plain sets of the tiny base A."""
    wm, plain = generate_sets(tiny_generate_config(), prepared, KEY, cache_root)
    return Generated(cache_root, prepared, wm, plain)


def synthetic_set(folder: Path, n: int, watermarked: bool, first_id: int) -> Path:
    """A generated-looking dataset with `n` unique prompts (ids from `first_id`), without running a model."""
    ids = list(range(first_id, first_id + n))
    datasets.Dataset.from_dict(
        {
            "id": ids,
            "prompt": [f"prompt number {i}" for i in ids],
            "answer": [f"answer number {i}" for i in ids],
            "prompt_ids": [[1, 3 + i % 50, 4 + i % 7] for i in ids],
            "answer_ids": [[5 + i % 40, 6, 7 + i % 3] for i in ids],
            "finish_reason": ["eos"] * n,
            "watermarked": [watermarked] * n,
            "scheme": ["kgw" if watermarked else "none"] * n,
            "k": [2 if watermarked else 0] * n,
            "key_fingerprint": ["abcd1234" if watermarked else ""] * n,
        },
        features=FEATURES,
    ).save_to_disk(str(folder))
    return folder
