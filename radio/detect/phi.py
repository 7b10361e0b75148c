"""The filter phi: score only tokens whose window is one of a chosen set of k-grams.

phi is built from Alice's own text, never from B's outputs (choosing windows by looking at B's outputs breaks H0):

- supervised: the k-grams of the watermarked texts Alice knows B may have trained on (a mix's `known` split);
- unsupervised: the most frequent k-grams of other watermarked text of A (a mix's `heldout` split), top-N.

A `Phi` is saved with a test's outputs as `phi.npy` (the (n, k) int64 k-grams, most frequent first) and
`phi.json` (k, size, source, top-N, distinct k-grams in the source, counts summary).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from radio.detect.tape import row_ids

PHI_ARRAY = "phi.npy"
PHI_META = "phi.json"


def all_kgrams(sequences: Sequence[Sequence[int]], k: int) -> torch.Tensor:
    """Every contiguous k-gram inside each sequence (none across sequences), as an (n, k) int64 tensor, in order."""
    if k < 1:
        raise ValueError(f"k: phi needs k >= 1, got {k}")
    arrays = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
    arrays = [a for a in arrays if a.size >= k]
    if not arrays:
        return torch.zeros((0, k), dtype=torch.int64)
    flat = np.concatenate(arrays)
    doc = np.repeat(np.arange(len(arrays)), [a.size for a in arrays])
    windows = np.lib.stride_tricks.sliding_window_view(flat, k)  # window j = flat[j : j + k]
    inside = doc[: windows.shape[0]] == doc[k - 1 :]
    return torch.from_numpy(np.ascontiguousarray(windows[inside]))


@dataclass(frozen=True)
class Phi:
    """A set of k-grams (most frequent first) and where it came from; `counts[i]` = occurrences of `grams[i]`."""

    grams: torch.Tensor
    counts: np.ndarray
    k: int
    source: str
    top_n: int | None
    n_distinct: int

    @property
    def size(self) -> int:
        """Number of k-grams in phi."""
        return int(self.grams.shape[0])

    def describe(self) -> dict[str, object]:
        """JSON-able summary (no k-grams)."""
        return {
            "k": self.k,
            "size": self.size,
            "source": self.source,
            "top_n": self.top_n,
            "n_distinct_in_source": self.n_distinct,
            "occurrences_covered": int(self.counts.sum()),
            "min_count": int(self.counts.min()) if self.size else 0,
        }

    def save(self, folder: str | Path) -> Path:
        """Write `phi.npy` and `phi.json` into `folder`; return the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / PHI_ARRAY, self.grams.numpy().astype(np.int64))
        meta = {**self.describe(), "counts": self.counts.astype(int).tolist()}
        (folder / PHI_META).write_text(json.dumps(meta, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Phi:
        """Read a phi saved by `save`."""
        folder = Path(folder)
        if not (folder / PHI_ARRAY).is_file() or not (folder / PHI_META).is_file():
            raise FileNotFoundError(f"phi {folder}: no {PHI_ARRAY} / {PHI_META}")
        meta = json.loads((folder / PHI_META).read_text())
        grams = torch.from_numpy(np.load(folder / PHI_ARRAY)).to(torch.int64).reshape(-1, int(meta["k"]))
        counts = np.asarray(meta["counts"], dtype=np.int64)
        return cls(grams, counts, int(meta["k"]), str(meta["source"]), meta["top_n"], int(meta["n_distinct_in_source"]))


def answer_windows(answers: Sequence[Sequence[int]], prompts: Sequence[Sequence[int]], k: int) -> torch.Tensor:
    """The window of every watermarked answer token (reaching back into its prompt), as (n, k) int64 rows."""
    from radio.detect.text import collect_pairs

    windows, _, has_window, _ = collect_pairs(k, answers, prompts, prompt_exclusion="none")
    return windows[has_window]


def build_phi(
    sequences: Sequence[Sequence[int]],
    k: int,
    top_n: int | None = None,
    source: str = "",
    prompts: Sequence[Sequence[int]] | None = None,
) -> Phi:
    """phi from Alice's texts: all their distinct k-grams, or the `top_n` most frequent (ties: first seen first).

    With `prompts`, `sequences` are answers to them and phi holds the windows that preceded each answer token
    (those that seeded its watermark, reaching back into the prompt); otherwise every k-gram inside each text.
    """
    if top_n is not None and top_n < 1:
        raise ValueError(f"top_n: must be >= 1 or None, got {top_n}")
    if k < 1:
        raise ValueError(f"k: phi needs k >= 1, got {k}")
    grams = all_kgrams(sequences, k) if prompts is None else answer_windows(sequences, prompts, k)
    if grams.shape[0] == 0:
        raise ValueError(f"phi: the source {source or '(texts)'} has no {k}-gram")
    codes, _ = pd.factorize(row_ids(grams))  # codes in order of first appearance
    counts = np.bincount(codes)
    first_row = np.full(counts.size, grams.shape[0], dtype=np.int64)
    np.minimum.at(first_row, codes, np.arange(codes.size))
    order = np.argsort(-counts, kind="stable")  # most frequent first; ties keep first-appearance order
    if top_n is not None:
        order = order[:top_n]
    return Phi(grams[first_row[order]], counts[order], k, source, top_n, int(counts.size))
