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


def column_ids(columns: list[np.ndarray]) -> np.ndarray:
    """Equal-length non-negative int columns -> int64 ids, equal exactly when the rows are equal."""
    n = columns[0].shape[0] if columns else 0
    if n == 0 or not columns:
        return np.zeros(n, dtype=np.int64)
    low = min(int(c.min()) for c in columns)
    if low < 0:
        raise ValueError(f"token ids must be non-negative, got {low}")
    bits = max(max(int(c.max()) for c in columns).bit_length(), 1)
    if bits * len(columns) <= 63:  # pack the whole row into one integer
        ids = columns[0].astype(np.int64, copy=True)
        for column in columns[1:]:
            ids <<= bits
            ids |= column
        return ids
    # Too wide to pack: fold one column at a time into dense ids. Both factors are dense (< n), so the packed
    # value stays below n^2, which fits int64 for any n < 2^31.
    ids = np.zeros(n, dtype=np.int64)
    for column in columns:
        dense, uniques = pd.factorize(column)
        ids, _ = pd.factorize(ids * len(uniques) + dense)
        ids = ids.astype(np.int64)
    return ids


def row_ids(rows: torch.Tensor | np.ndarray) -> np.ndarray:
    """(n, m) non-negative int rows -> (n,) int64 ids, equal exactly when the rows are equal."""
    array = rows.detach().cpu().to(torch.int64).numpy() if isinstance(rows, torch.Tensor) else rows
    if array.shape[1] == 0:
        return np.zeros(array.shape[0], dtype=np.int64)
    return column_ids([array[:, j] for j in range(array.shape[1])])


def first_occurrence_of_ids(ids: np.ndarray) -> np.ndarray:
    """(n,) int64 ids -> (n,) bool numpy mask of first occurrences, through a hash table (no sort)."""
    return ~pd.Series(ids).duplicated(keep="first").to_numpy(copy=True)


def first_occurrence(rows: torch.Tensor) -> torch.Tensor:
    """(n, m) int rows -> (n,) bool: True where a row appears for the first time, in order."""
    if rows.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    return torch.from_numpy(first_occurrence_of_ids(row_ids(rows))).to(rows.device)


def rows_in(rows: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(n, m) rows and (r, m) reference rows -> (n,) bool: whether each row occurs in `reference`."""
    if rows.shape[0] == 0 or reference.shape[0] == 0:
        return torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)
    ids = row_ids(torch.cat([rows.cpu(), reference.cpu().to(rows.dtype)]))  # one id space for both
    present = pd.Series(ids[: rows.shape[0]]).isin(ids[rows.shape[0] :]).to_numpy(copy=True)
    return torch.from_numpy(present).to(rows.device)


def tape_columns(windows: np.ndarray, tokens: np.ndarray, mode: str) -> list[np.ndarray] | None:
    """The columns the tape remembers for `mode` (window+token, or window), or None when dedup is off."""
    if mode == "window+token":
        return [windows[:, j] for j in range(windows.shape[1])] + [tokens]
    if mode == "window":
        return [windows[:, j] for j in range(windows.shape[1])]
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
