"""Keyword filter: the captions that hold a phrase (word boundaries, any case) and fit CLIP's 77-token window.

Without a CLIP tokenizer folder the token count is an offline approximation (`approx_clip_token_count`): CLIP's
BPE splits text on its pre-tokenizer pattern (letter runs, single digits, punctuation runs), and a common English
word is one token while a rarer or longer one splits into several. The approximation counts one token per
digit and per punctuation run, and ceil(len / 6) tokens per letter run (so words up to six letters are one
token), plus the start and end tokens. On web captions it errs high for long common words (which drops a caption
close to the limit rather than keeping one that CLIP would truncate).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

CLIP_MAX_TOKENS = 77  # including the start and end tokens

_PRETOKEN = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+", re.IGNORECASE)
_LETTERS_PER_TOKEN = 6


def approx_clip_token_count(text: str) -> int:
    """Offline approximation of CLIP's token count of `text`, start and end tokens included (see module doc)."""
    count = 2
    for piece in _PRETOKEN.findall(text.lower()):
        if piece[0].isalpha() and not piece.startswith("'"):
            count += math.ceil(len(piece) / _LETTERS_PER_TOKEN)
        else:
            count += 1
    return count


def clip_token_counter(tokenizer_path: str | Path) -> Callable[[Sequence[str]], np.ndarray]:
    """A counter using the real CLIP tokenizer from a local folder (start and end tokens included)."""
    folder = Path(tokenizer_path)
    if not folder.is_dir():
        raise FileNotFoundError(f"CLIP tokenizer folder: {folder} not found")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)

    def count(texts: Sequence[str]) -> np.ndarray:
        ids = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
        return np.asarray([len(i) for i in ids], dtype=np.int64)

    return count


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """Case-insensitive pattern of a phrase on word boundaries; any run of whitespace between its words matches."""
    words = keyword.split()
    if not words:
        raise ValueError("keyword: empty phrase")
    return re.compile(r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)", re.IGNORECASE)


def token_counts(captions: Sequence[str], tokenizer_path: str | Path | None = None) -> np.ndarray:
    """CLIP token counts of the captions: exact with a tokenizer folder, else approximated."""
    if tokenizer_path is not None:
        return clip_token_counter(tokenizer_path)(captions)
    return np.asarray([approx_clip_token_count(c) for c in captions], dtype=np.int64)


def filter_by_keyword(
    captions: Sequence[str],
    keyword: str,
    max_tokens: int | None = CLIP_MAX_TOKENS,
    tokenizer_path: str | Path | None = None,
) -> np.ndarray:
    """Indices (int64, ascending) of the captions holding `keyword` on word boundaries, any case, whose CLIP token
    count is at most `max_tokens` (None keeps every length). May be empty: callers decide whether that is an error.
    """
    pattern = keyword_pattern(keyword)
    hits = np.asarray([i for i, c in enumerate(captions) if pattern.search(c)], dtype=np.int64)
    if max_tokens is None or hits.size == 0:
        return hits
    counts = token_counts([captions[i] for i in hits], tokenizer_path)
    return hits[counts <= max_tokens]
