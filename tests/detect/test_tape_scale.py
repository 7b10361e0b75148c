"""The linear-time tape: large, chunked and split inputs give exactly the counts and p-values of a plain Python tape."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from radio import Watermark, WatermarkConfig, detect_tokens
from radio.detect import tape
from radio.detect.tape import first_occurrence_of_ids, first_occurrence_rows
from radio.stats.tails import log_binom_sf


def _python_tape(wm: Watermark, texts: list[list[int]]) -> tuple[int, int, list[tuple[int, ...]]]:
    """Independent reference: a Python set over (window, token), texts in order; returns (eligible, scored, pairs)."""
    seen: set[tuple[int, ...]] = set()
    pairs, eligible = [], 0
    for text in texts:
        for pos in range(wm.k, len(text)):
            if text[pos] >= wm.vocab_size:
                continue
            eligible += 1
            key = (*text[pos - wm.k : pos], text[pos])
            if key not in seen:
                seen.add(key)
                pairs.append(key)
    return eligible, len(pairs), pairs


@pytest.mark.parametrize(("vocab", "k"), [(32000, 2), (2048, 1), (50, 2), (7, 3)])
def test_large_input_matches_python_tape_and_exact_tail(vocab: int, k: int) -> None:
    """~2e5 tokens (past one chunk; many repeats at small vocabularies) against a Python tape and the exact tail."""
    rng = np.random.default_rng(vocab + k)
    texts = [rng.integers(0, vocab + 2, int(rng.integers(1, 400))).tolist() for _ in range(1000)]
    wm = Watermark(WatermarkConfig("kgw", k=k, gamma=0.25), key=b"scale", vocab_size=vocab)
    result = detect_tokens(wm, texts)
    eligible, scored, pairs = _python_tape(wm, texts)
    assert (result.n_eligible, result.n_scored) == (eligible, scored)
    windows = torch.tensor([p[:-1] for p in pairs], dtype=torch.int64).reshape(-1, k)
    tokens = torch.tensor([p[-1] for p in pairs], dtype=torch.int64)
    green = int(wm.score_pairs(windows, tokens).sum())
    assert result.statistic == green
    assert result.log10_pvalue == float(log_binom_sf(green, scored, wm.threshold)) / math.log(10.0)


@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 16])
@pytest.mark.parametrize("max_key_bits", [63, 40, 24])
def test_chunked_and_split_tape_give_identical_results(
    monkeypatch: pytest.MonkeyPatch, chunk: int, max_key_bits: int
) -> None:
    """Chunk sizes and the top-bit split (forced by narrowing the sort key) change nothing, counts or p-values."""
    rng = np.random.default_rng(chunk)
    texts = [rng.integers(0, 3000, 300).tolist() for _ in range(60)]
    texts += [texts[3][:150], texts[7]]  # exact repeats: scored once
    prompts = [rng.integers(0, 3000, 20).tolist() for _ in texts]
    wm = Watermark(WatermarkConfig("aaronson", k=2), key=b"chunks", vocab_size=2900)
    expected = [detect_tokens(wm, texts, prompts, dedup=d) for d in ("window+token", "window")]
    monkeypatch.setattr(tape, "CHUNK", chunk)
    original = tape.first_occurrence_from_chunks
    monkeypatch.setattr(
        tape,
        "first_occurrence_from_chunks",
        lambda ids, n, id_bits, max_bits=63: original(ids, n, id_bits, min(max_bits, max_key_bits)),
    )
    got = [detect_tokens(wm, texts, prompts, dedup=d) for d in ("window+token", "window")]
    assert [g.to_dict() for g in got] == [e.to_dict() for e in expected]


@pytest.mark.parametrize("high", [2, 1000, 2**45, 2**62])
@pytest.mark.parametrize("max_key_bits", [63, 40, 20])
def test_first_occurrence_equals_hash_table(high: int, max_key_bits: int) -> None:
    rng = np.random.default_rng(high % 1000)
    for n in (1, 2, 3, 1000, 70_000):
        ids = rng.integers(0, high, n)
        expected = ~pd.Series(ids).duplicated(keep="first").to_numpy()
        assert np.array_equal(first_occurrence_of_ids(ids, max_key_bits), expected)


def test_first_occurrence_rows_respects_keep_and_wide_rows() -> None:
    rng = np.random.default_rng(0)
    for high in (3, 2**20, 2**40):  # 2**40 x 3 columns cannot be bit-packed: the column_ids fold is used
        columns = [rng.integers(0, high, 5000) for _ in range(3)]
        keep = rng.random(5000) < 0.6
        frame = pd.DataFrame(dict(enumerate(columns)))
        kept = np.flatnonzero(keep)
        expected = kept[~frame.iloc[kept].duplicated().to_numpy()]
        assert np.array_equal(first_occurrence_rows(columns, keep), expected)
        assert np.array_equal(first_occurrence_rows(columns), np.flatnonzero(~frame.duplicated().to_numpy()))
    assert first_occurrence_rows([np.arange(4)], np.zeros(4, dtype=bool)).shape == (0,)


def test_tensor_and_list_inputs_agree() -> None:
    """Lists take the one-pass reader, tensors and arrays the per-text path: same result."""
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 500, int(rng.integers(0, 50))) for _ in range(40)]
    wm = Watermark(WatermarkConfig("kgw", k=2), key=3, vocab_size=450)
    as_lists = detect_tokens(wm, [a.tolist() for a in arrays])
    assert detect_tokens(wm, [torch.from_numpy(a) for a in arrays]).to_dict() == as_lists.to_dict()
    assert detect_tokens(wm, arrays).to_dict() == as_lists.to_dict()
    with pytest.raises(ValueError, match=r"sequences\[1\]: negative token id -4"):
        detect_tokens(wm, [[1, 2, 3], [5, -4, 6]])
