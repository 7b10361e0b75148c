"""Loading local checkpoints by path, and vocabulary checks between tokenizer, A and B."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radio.data.tokenizer import TokenizerConfig, train_tokenizer
from radio.models import (
    ModelPathError,
    VocabMismatchError,
    build_model,
    check_same_vocabulary,
    check_tokenizer_fits,
    load_model,
    load_tokenizer,
    model_vocab_size,
)

TEXTS = [f"Return the {w} of the object, or None when it has no {w}." for w in ("name", "size", "value", "owner")] * 20


def save_checkpoint(folder: Path, vocab_size: int, logits_width: int | None = None, seed: int = 0) -> Path:
    tokenizer = train_tokenizer(TEXTS, TokenizerConfig(vocab_size=vocab_size, min_frequency=1))
    model = build_model(
        "tiny-0.5m",
        vocab_size=logits_width or len(tokenizer),
        seed=seed,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_load_by_path_round_trip(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / "m", vocab_size=300)
    model = load_model(folder)
    tokenizer = load_tokenizer(folder)
    assert not model.training
    assert tokenizer.padding_side == "left"
    assert model_vocab_size(model) == len(tokenizer)
    ids = torch.tensor([tokenizer.encode("Return the name", add_special_tokens=False)])
    assert model(input_ids=ids).logits.shape[-1] == model_vocab_size(model)


def test_logits_wider_than_tokenizer_is_allowed_and_recorded(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / "wide", vocab_size=300, logits_width=320)
    model, tokenizer = load_model(folder), load_tokenizer(folder)
    assert len(tokenizer) < model_vocab_size(model) == 320
    check_tokenizer_fits(tokenizer, model_vocab_size(model), "model")


def test_tokenizer_larger_than_logits_is_rejected(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(TEXTS, TokenizerConfig(vocab_size=300, min_frequency=1))
    with pytest.raises(VocabMismatchError, match=r"logits are only 100 wide"):
        check_tokenizer_fits(tokenizer, 100, "model")


def test_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(ModelPathError, match=r"nowhere"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelPathError, match=r"config.json"):
        load_model(tmp_path / "empty")


def test_same_vocabulary_check(tmp_path: Path) -> None:
    a = save_checkpoint(tmp_path / "a", vocab_size=300, seed=1)
    b = save_checkpoint(tmp_path / "b", vocab_size=300, seed=2)
    assert check_same_vocabulary(a, b) == 300
    c = save_checkpoint(tmp_path / "c", vocab_size=280, seed=3)
    with pytest.raises(VocabMismatchError, match=r"base_b"):
        check_same_vocabulary(a, c)
