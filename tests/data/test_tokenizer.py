"""Byte-level BPE tokenizer: exact round trip, special tokens, save and reload by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from radio.config import ConfigError, to_dict
from radio.data.corpus import stdlib_code, stdlib_docstrings
from radio.data.tokenizer import TokenizerConfig, encode_document, train_tokenizer
from radio.models import load_tokenizer

TEXTS = [
    "Return a new list containing all items from the iterable in ascending order.",
    "Raise ValueError if the value is not present.",
    "Open file and return a stream. Raise OSError upon failure.",
] * 30


def test_round_trip_and_specials(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(TEXTS, TokenizerConfig(vocab_size=400, min_frequency=1))
    assert len(tokenizer) <= 400
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    for text in [*TEXTS[:3], "naïve café — 日本語 ✓\n\ttabs  and  spaces", ""]:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids) == text  # byte-level: nothing is unknown
    doc = encode_document(tokenizer, TEXTS[0])
    assert doc[0] == 1 and doc[-1] == 2
    tokenizer.save_pretrained(str(tmp_path / "tok"))
    again = load_tokenizer(tmp_path / "tok")
    assert again.encode(TEXTS[1], add_special_tokens=False) == tokenizer.encode(TEXTS[1], add_special_tokens=False)
    assert again.padding_side == "left"


def test_training_is_deterministic() -> None:
    cfg = TokenizerConfig(vocab_size=350, min_frequency=1)
    assert train_tokenizer(TEXTS, cfg).get_vocab() == train_tokenizer(TEXTS, cfg).get_vocab()


def test_vocab_floor_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"tokenizer.vocab_size"):
        TokenizerConfig(vocab_size=100)


def test_chat_template_wraps_a_user_turn_as_llama_2(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(TEXTS, TokenizerConfig(vocab_size=400, min_frequency=1, chat=True))
    tokenizer.save_pretrained(str(tmp_path / "tok"))
    again = load_tokenizer(tmp_path / "tok")  # the template travels with the saved folder
    text = again.apply_chat_template(
        [{"role": "user", "content": "Sort the list."}], add_generation_prompt=True, tokenize=False
    )
    assert text == "<s>[INST] Sort the list. [/INST]"
    turn = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    assert again.apply_chat_template(turn, tokenize=False) == "<s>[INST] Q [/INST] A</s>"
    assert train_tokenizer(TEXTS, TokenizerConfig(vocab_size=400, min_frequency=1)).chat_template is None


def test_options_at_their_default_leave_the_stage_hash_as_before() -> None:
    # The stage config of every tokenizer built before `code` and `chat` existed: its cached stage keeps its hash.
    assert to_dict(TokenizerConfig()) == {"vocab_size": 2048, "min_frequency": 2}
    assert to_dict(TokenizerConfig(code=True, chat=True)) == {
        "vocab_size": 2048,
        "min_frequency": 2,
        "code": True,
        "chat": True,
    }


def test_stdlib_code_has_no_docstring() -> None:
    files = stdlib_code()
    assert len(files) > 100
    doc = stdlib_docstrings()[0]  # a module's docstring, cut from its file
    assert not any(doc in source for source in files)
    assert any("def " in source for source in files)
