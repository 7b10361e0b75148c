"""Vectorised bookkeeping for detection: the dedup tape and k-gram membership, without per-token Python.

Under H0 the per-token scores are i.i.d. only if every (window, token) pair is scored once: the tape keeps the first
occurrence of each key across the whole test. Rows of token ids are first turned into exact int64 ids (bit-packed
when they fit in 63 bits, else folded column by column), then deduplicated with a hash table (pandas), which is
several times faster than sorting on CPU. Membership tests (prompt windows, filter phi) use the same exact ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

DEDUP_MODES = ("window+token", "window", "none")


def row_ids(rows: torch.Tensor) -> np.ndarray:
    """(n, m) non-negative int rows -> (n,) int64 ids, equal exactly when the rows are equal."""
    array = rows.detach().cpu().to(torch.int64).numpy()
    n, m = array.shape
    if n == 0 or m == 0:
        return np.zeros(n, dtype=np.int64)
    if array.min() < 0:
        raise ValueError(f"token ids must be non-negative, got {int(array.min())}")
    bits = max(int(array.max()).bit_length(), 1)
    if bits * m <= 63:  # pack the whole row into one integer
        ids = np.zeros(n, dtype=np.int64)
        for j in range(m):
            ids = (ids << bits) | array[:, j]
        return ids
    # Too wide to pack: fold one column at a time into dense ids (< n), which always fits.
    ids = np.zeros(n, dtype=np.int64)
    for j in range(m):
        ids, _ = pd.factorize(ids * (int(array[:, j].max()) + 1) + array[:, j])
        ids = ids.astype(np.int64)
    return ids


def first_occurrence(rows: torch.Tensor) -> torch.Tensor:
    """(n, m) int rows -> (n,) bool: True where a row appears for the first time, in order."""
    if rows.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    duplicated = pd.Series(row_ids(rows)).duplicated(keep="first").to_numpy(copy=True)
    return torch.from_numpy(~duplicated).to(rows.device)


def rows_in(rows: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(n, m) rows and (r, m) reference rows -> (n,) bool: whether each row occurs in `reference`."""
    if rows.shape[0] == 0 or reference.shape[0] == 0:
        return torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)
    ids = row_ids(torch.cat([rows.cpu(), reference.cpu().to(rows.dtype)]))  # one id space for both
    present = pd.Series(ids[: rows.shape[0]]).isin(ids[rows.shape[0] :]).to_numpy(copy=True)
    return torch.from_numpy(present).to(rows.device)


def dedup_keys(windows: torch.Tensor, tokens: torch.Tensor, mode: str) -> torch.Tensor | None:
    """The rows the tape remembers for `mode`, or None when dedup is off."""
    if mode == "window+token":
        return torch.cat([windows, tokens[:, None]], dim=1)
    if mode == "window":
        return windows
    if mode == "none":
        return None
    raise ValueError(f"dedup: unknown mode {mode!r}; choose one of {list(DEDUP_MODES)}")


def kgrams(sequence: torch.Tensor, k: int) -> torch.Tensor:
    """All contiguous k-grams of a 1-D token tensor as an (n - k + 1, k) tensor (empty when too short)."""
    if k == 0:
        return sequence.new_zeros((1, 0))
    if sequence.shape[0] < k:
        return sequence.new_zeros((0, k))
    return sequence.unfold(0, k, 1)
