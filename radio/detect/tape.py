"""Vectorised bookkeeping for detection: the dedup tape and k-gram membership, without per-token Python.

Under H0 the per-token scores are i.i.d. only if every (window, token) pair is scored once: the tape keeps the first
occurrence of each key across the whole test. Rows of token ids are first turned into exact int64 ids (bit-packed
when they fit in 63 bits, else folded column by column), then deduplicated by one vectorised sort of (id, position) keys
(`first_occurrence_of_ids`: linear-time in practice at 1e7 tokens, unlike a hash table, whose probes miss the
cache at that size). Membership tests (prompt windows, filter phi) use the same exact ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
    array = _int64_numpy(rows) if isinstance(rows, torch.Tensor) else rows
    if array.shape[1] == 0:
        return np.zeros(array.shape[0], dtype=np.int64)
    return column_ids([array[:, j] for j in range(array.shape[1])])


# Why sorting and not a hash table: a hash table (pandas) is fast while it fits in cache, but past ~1e6 keys every
# probe misses and the cost per key grew ~5x from 1e6 to 1e7 keys (the super-linear detection time of issue 10).
# numpy's sort of int64 values is vectorised (AVX-512 where present) and stays ~7 ns per key at 1e7. Packing the
# position below the id in one int64 makes a plain (unstable) value sort order equal ids by position, so the first
# element of each run of equal ids is its first occurrence.
#
# Why chunks: every fresh n-sized temporary costs page faults (measured ~7 ns per int64 element at 1e7 on a busy
# VM, more than the arithmetic), so the element-wise steps below run over slices of CHUNK elements with small
# temporaries that stay in cache, and only the sort keys and the result are n-sized.
CHUNK = 1 << 16
_MAX_SPLIT_BITS = 12  # at most 4096 segments (one numpy sort call each) before falling back to a hash table
_MIX_ODD = np.uint64(0x9E3779B97F4A7C15)

IdChunks = Callable[[int, int], np.ndarray]  # (start, stop) -> int64 ids of those rows (may be a view)


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    return ((start, min(n, start + CHUNK)) for start in range(0, n, CHUNK))


def _mark_run_starts(key: np.ndarray, pos_bits: int, mask: np.ndarray) -> None:
    """Set mask[position] for the first key of every run of equal ids (bits above `pos_bits`) in sorted `key`."""
    low = (1 << pos_bits) - 1
    mask[int(key[0]) & low] = True
    for start, stop in _chunks(key.shape[0]):
        start = max(start, 1)
        if stop <= start:
            continue
        # The ids (high bits) of neighbours differ exactly when their XOR reaches the position bits.
        differs = np.bitwise_xor(key[start:stop], key[start - 1 : stop - 1]) > low
        mask[key[start:stop][differs] & low] = True


def _positioned(ids: IdChunks, n: int, pos_bits: int, shift: int = 0) -> np.ndarray:
    """(ids >> shift) << pos_bits | position, for all n rows, built chunk by chunk."""
    key = np.empty(n, dtype=np.int64)
    for start, stop in _chunks(n):
        out = key[start:stop]
        np.right_shift(ids(start, stop), shift, out=out)
        out <<= pos_bits
        out |= np.arange(start, stop, dtype=np.int64)
    return key


def first_occurrence_from_chunks(ids: IdChunks, n: int, id_bits: int, max_key_bits: int = 63) -> np.ndarray:
    """(n,) bool mask of the first occurrence of each id; ids (< 2^id_bits, >= 0) are read by chunks of rows.

    One sort of (id << position bits | position) when both fit in `max_key_bits` (63: a non-negative int64).
    Otherwise the ids are first split by their top bits (after a bijective mix, so that the segments are even):
    a sort of (segment << position bits | position) groups them stably, and each segment, whose ids now need fewer
    bits, is sorted on its own. `max_key_bits` is lowered by tests to exercise the split on small inputs.
    """
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    pos_bits = max(1, (n - 1).bit_length())
    split = id_bits + pos_bits - max_key_bits
    if split <= 0:
        key = _positioned(ids, n, pos_bits)
        key.sort()
        _mark_run_starts(key, pos_bits, mask)
        return mask
    if split > _MAX_SPLIT_BITS:  # ids too wide for few segments (k >= 3 at a large vocabulary): one hash table
        every = np.concatenate([ids(start, stop) for start, stop in _chunks(n)])
        return ~pd.Series(every, copy=False).duplicated(keep="first").to_numpy(copy=True)
    # Multiplying by an odd constant modulo 2^id_bits is a bijection: equal ids stay equal, distinct stay distinct.
    mixed = np.empty(n, dtype=np.uint64)
    id_mask = np.uint64((1 << id_bits) - 1)
    for start, stop in _chunks(n):
        out = mixed[start:stop]
        np.multiply(ids(start, stop).view(np.uint64), _MIX_ODD, out=out)
        out &= id_mask
    mixed_ids = mixed.view(np.int64)
    low_bits = id_bits - split
    key = _positioned(lambda start, stop: mixed_ids[start:stop], n, pos_bits, shift=low_bits)
    key.sort()  # stable partition by segment: position order inside each segment
    bounds = np.searchsorted(key, np.arange(1, 1 << split, dtype=np.int64) << pos_bits).tolist()
    low_mask, pos_mask = (1 << low_bits) - 1, (1 << pos_bits) - 1
    for start, stop in _chunks(n):  # in place: (low id bits << position bits | position), segment by segment
        positions = key[start:stop] & pos_mask
        low = mixed_ids[positions]
        low &= low_mask
        low <<= pos_bits
        low |= positions
        key[start:stop] = low
    for start, stop in zip([0, *bounds], [*bounds, n], strict=True):
        if stop > start:
            segment = key[start:stop]
            segment.sort()  # in place: a view of `key`
            _mark_run_starts(segment, pos_bits, mask)
    return mask


def first_occurrence_of_ids(ids: np.ndarray, max_key_bits: int = 63) -> np.ndarray:
    """(n,) non-negative int64 ids -> (n,) bool numpy mask of first occurrences, in near-linear time at any n."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.shape[0] and int(ids.min()) < 0:
        raise ValueError("first_occurrence_of_ids: ids must be non-negative")
    id_bits = max(1, int(ids.max()).bit_length()) if ids.shape[0] else 1
    return first_occurrence_from_chunks(lambda start, stop: ids[start:stop], ids.shape[0], id_bits, max_key_bits)


def first_occurrence_rows(
    columns: list[np.ndarray], keep: np.ndarray | None = None, max_key_bits: int = 63
) -> np.ndarray:
    """Increasing indices of the rows that are the first occurrence of their row, among the rows `keep` marks.

    `columns` are equal-length non-negative int64 columns (at least one); `keep` a bool mask (None: every row).
    Rows are bit-packed chunk by chunk straight from the columns (no n x k copy); rows too wide to pack go
    through `column_ids` first.
    """
    n = columns[0].shape[0]
    rows = None if keep is None or keep.all() else np.flatnonzero(keep)
    m = n if rows is None else rows.shape[0]
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    where = True if rows is None else keep
    if min(int(np.min(c, where=where, initial=0)) for c in columns) < 0:
        raise ValueError("token ids must be non-negative")
    bits = max(max(int(np.max(c, where=where, initial=0)).bit_length() for c in columns), 1)
    if bits * len(columns) <= 63:

        def ids(start: int, stop: int) -> np.ndarray:
            index = slice(start, stop) if rows is None else rows[start:stop]
            packed = columns[0][index].astype(np.int64, copy=True)
            for column in columns[1:]:
                packed <<= bits
                packed |= column[index]
            return packed

        mask = first_occurrence_from_chunks(ids, m, bits * len(columns), max_key_bits)
    else:
        kept = columns if rows is None else [column[rows] for column in columns]
        mask = first_occurrence_of_ids(column_ids(kept), max_key_bits)
    firsts = np.flatnonzero(mask)
    return firsts if rows is None else rows[firsts]


def first_occurrence(rows: torch.Tensor) -> torch.Tensor:
    """(n, m) int rows -> (n,) bool: True where a row appears for the first time, in order."""
    if rows.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    return torch.from_numpy(first_occurrence_of_ids(row_ids(rows))).to(rows.device)


def rows_in(rows: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(n, m) rows and (r, m) reference rows -> (n,) bool: whether each row occurs in `reference`."""
    if rows.shape[0] == 0 or reference.shape[0] == 0:
        return torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)
    # numpy, not torch.cat: one id space for both, without torch's multi-threaded copy kernels (slow on a busy box).
    stacked = np.concatenate([_int64_numpy(rows), _int64_numpy(reference)])
    ids = row_ids(stacked)
    present = pd.Series(ids[: rows.shape[0]], copy=False).isin(ids[rows.shape[0] :]).to_numpy(copy=True)
    return torch.from_numpy(present).to(rows.device)


def _int64_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU int64 numpy view of an integer tensor (a copy only when it lives elsewhere or has another dtype)."""
    return tensor.detach().cpu().to(torch.int64).numpy()


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
