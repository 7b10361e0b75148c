"""Tiny stand-ins for the fine-tuning inputs: a Llama-style base model folder and a prompt/answer dataset.

Tests and `bench/bench_finetune.py` use them so that `radio.train` can be exercised without the model and data
stages. Everything is built locally from a config and a seed; nothing is downloaded.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TOY_SIZES: dict[str, dict[str, int]] = {
    # name: LlamaConfig overrides; all share the toy tokenizer's vocabulary.
    "toy-xs": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4},
    "toy-s": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4},
    "toy-m": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 6, "num_attention_heads": 8},
}


def toy_corpus(min_chars: int = 8000) -> str:
    """A few KB of English from the standard library's docstrings (present on every machine)."""
    import collections
    import functools
    import itertools
    import json
    import pathlib
    import textwrap

    parts: list[str] = []
    for module in (functools, itertools, collections, json, textwrap, pathlib, random, inspect):
        for _, obj in sorted(vars(module).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc:
                parts.append(doc)
            if sum(map(len, parts)) >= min_chars:
                return "\n\n".join(parts)
    return "\n\n".join(parts)


def build_toy_tokenizer(vocab_size: int = 256) -> Any:
    """A BPE `PreTrainedTokenizerFast` trained on `toy_corpus` towards `vocab_size` entries; <pad>=0, <eos>=1."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<eos>", "<unk>"])
    raw.train_from_iterator(toy_corpus().splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def build_toy_base(
    out_dir: str | Path,
    size: str = "toy-xs",
    vocab_size: int = 256,
    seed: int = 0,
    tie_embeddings: bool = True,
    shape: dict[str, int] | None = None,
) -> Path:
    """Save a random `LlamaForCausalLM` and a BPE `PreTrainedTokenizerFast` (eos/pad) to `out_dir`.

    `shape` (LlamaConfig hidden_size, intermediate_size, num_hidden_layers, num_attention_heads) overrides
    `size`. The tokenizer is trained towards `vocab_size` entries (fewer when the toy corpus runs out of
    merges); the model always has `vocab_size` rows.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dims = dict(shape if shape is not None else TOY_SIZES[size])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_toy_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=vocab_size,
        max_position_embeddings=256,
        num_key_value_heads=dims["num_attention_heads"],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=tie_embeddings,
        **dims,
    )
    with torch.random.fork_rng(devices=[]):  # the caller's global RNG state is left untouched
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def pattern_answer(prompt: Sequence[int], length: int, vocab_low: int, vocab_high: int) -> list[int]:
    """A deterministic answer: counts up by 1 from the last prompt token, wrapping in [low, high)."""
    span = vocab_high - vocab_low
    start = (prompt[-1] - vocab_low) % span
    return [vocab_low + (start + 1 + i) % span for i in range(length)]


def build_toy_dataset(
    out_dir: str | Path,
    n: int = 64,
    prompt_len: int = 8,
    answer_len: int = 16,
    vocab_low: int = 3,
    vocab_high: int = 256,
    seed: int = 0,
) -> Path:
    """Save a `datasets` folder (prompt_ids, answer_ids, watermarked); answers follow `pattern_answer`."""
    from datasets import Dataset

    rng = random.Random(seed)
    prompts = [[rng.randrange(vocab_low, vocab_high) for _ in range(prompt_len)] for _ in range(n)]
    answers = [pattern_answer(p, answer_len, vocab_low, vocab_high) for p in prompts]
    data = Dataset.from_dict(
        {"prompt_ids": prompts, "answer_ids": answers, "watermarked": [i % 2 == 0 for i in range(n)]}
    )
    out = Path(out_dir)
    data.save_to_disk(str(out))
    return out
