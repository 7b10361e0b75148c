"""Prompt pools for self-instruct generation.

Two kinds of source:
- the tiny bases continue text: prompts are the opening tokens of held-out corpus passages (every held-out document
  is cut into consecutive chunks of `prompt_tokens` tokens; each full chunk, after bos, is one prompt);
- real models answer instructions read from a local file or folder (one instruction per record), wrapped in the
  tokenizer's chat template when it has one, else in a plain instruction template.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerBase

INSTRUCTION_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n"


@dataclass(frozen=True)
class Prompt:
    """One prompt: its readable text and the exact ids fed to the model."""

    text: str
    ids: list[int]


def read_prompt_texts(path: str | Path, field: str) -> list[str]:
    """Texts of a local prompt source (.txt / .jsonl / .parquet / save_to_disk folder), field `field`."""
    from radio.data.corpus import _read_local

    return _read_local(Path(path).expanduser(), field)


def opening_prompts(texts: list[str], tokenizer: PreTrainedTokenizerBase, prompt_tokens: int) -> list[Prompt]:
    """Consecutive `prompt_tokens`-token chunks of every text, each after bos: continuation prompts."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    prompts = []
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        for start in range(0, len(ids) - prompt_tokens + 1, prompt_tokens):
            chunk = ids[start : start + prompt_tokens]
            prompts.append(Prompt(tokenizer.decode(chunk), [*bos, *chunk]))
    return prompts


def instruction_prompts(texts: list[str], tokenizer: PreTrainedTokenizerBase, style: str) -> list[Prompt]:
    """Instructions wrapped in the chat template (`style="chat"`) or `INSTRUCTION_TEMPLATE` (`"instruction"`)."""
    prompts = []
    for text in texts:
        if style == "chat":
            ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
            )
            if isinstance(ids, dict) or hasattr(ids, "keys"):  # some versions return a BatchEncoding
                ids = ids["input_ids"]
            ids = list(ids)
        else:
            ids = tokenizer.encode(INSTRUCTION_TEMPLATE.format(instruction=text), add_special_tokens=False)
            if tokenizer.bos_token_id is not None:
                ids = [tokenizer.bos_token_id, *ids]
        prompts.append(Prompt(text, ids))
    return prompts


def prompt_pool(prompts: list[Prompt], seed: int) -> list[Prompt]:
    """Prompts with exact duplicates (after whitespace normalisation) removed, in a seeded random order."""
    seen: set[str] = set()
    unique = []
    for prompt in prompts:
        key = " ".join(prompt.text.split())
        if key not in seen:
            seen.add(key)
            unique.append(prompt)
    random.Random(seed).shuffle(unique)
    return unique
