"""Keyword filter: word boundaries, case, the 77-token limit (approximate and with a real CLIP tokenizer)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radio.replication.keywords import approx_clip_token_count, filter_by_keyword, keyword_pattern, token_counts

CAPTIONS = [
    "Starry Night by Van Gogh, oil on canvas",
    "VAN GOGH museum poster",
    "vangogh style",  # no word boundary between the words
    "van goghs letters",  # the phrase continues into a longer word
    "Van  Gogh\tsunflowers",  # other whitespace between the words
    "(van gogh)",
    "a cat",
]


def test_word_boundary_and_case():
    assert filter_by_keyword(CAPTIONS, "van gogh", max_tokens=None).tolist() == [0, 1, 4, 5]
    assert filter_by_keyword(CAPTIONS, "GOGH", max_tokens=None).tolist() == [0, 1, 4, 5]
    assert filter_by_keyword(CAPTIONS, "zebra").size == 0
    with pytest.raises(ValueError, match="empty phrase"):
        keyword_pattern("   ")
    assert keyword_pattern("c++").search("I like c++ code")  # regex characters are escaped


def test_long_captions_dropped():
    long = "van gogh " + " ".join(["word"] * 80)
    captions = [*CAPTIONS, long]
    assert filter_by_keyword(captions, "van gogh").tolist() == [0, 1, 4, 5]
    assert filter_by_keyword(captions, "van gogh", max_tokens=None).tolist() == [0, 1, 4, 5, 7]


def test_approximate_count():
    """Start + end tokens, one per short word, digits one each, long words split, punctuation runs one each."""
    assert approx_clip_token_count("") == 2
    assert approx_clip_token_count("a red cat") == 5
    assert approx_clip_token_count("1920") == 6
    assert approx_clip_token_count("impressionism") == 2 + 3  # 13 letters: ceil(13 / 6)
    assert approx_clip_token_count("cat, dog!!") == 2 + 4


def _tiny_clip_tokenizer(folder):
    """A CLIP tokenizer built from files written here: byte-level characters and a few merges, no download."""
    from transformers import CLIPTokenizer

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab_tokens = [
        "!",
        ",",
        *letters,
        *[f"{c}</w>" for c in letters],
        "ca",
        "cat</w>",
        "<|startoftext|>",
        "<|endoftext|>",
    ]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab_tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\nc a\nca t</w>\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_real_tokenizer_counts(tmp_path):
    """With a tokenizer folder the filter counts real tokens: 'cat' is one token, 'dog' three (no merges)."""
    folder = _tiny_clip_tokenizer(tmp_path)
    counts = token_counts(["cat", "dog", "cat cat"], folder)
    np.testing.assert_array_equal(counts, [3, 5, 4])
    captions = ["cat " * 74, "cat " * 76, "dog " * 30]  # 76, 78 and 92 tokens with start and end
    assert filter_by_keyword(captions, "cat", max_tokens=77, tokenizer_path=folder).tolist() == [0]
    with pytest.raises(FileNotFoundError, match="CLIP tokenizer folder"):
        token_counts(["x"], tmp_path / "absent")
