"""Training-set deduplication, a training-time axis of the replication sweep: none, exact, or near-duplicate.

`exact` keeps the first of every group of byte-identical images; `near` keeps the first of every connected group
of images whose embeddings have cosine similarity >= threshold (groups chain: two images linked through a third
are one group, as in SemDeDup-style pruning of near-duplicate clusters).
"""

from __future__ import annotations

import hashlib

import numpy as np

DEDUP_MODES = ("none", "exact", "near")


def deduplicate(
    mode: str,
    images: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    threshold: float = 0.95,
    chunk: int = 2048,
) -> np.ndarray:
    """Indices (int64, ascending) of the rows kept: all for `none`; one per group of identical `images` for
    `exact`; one per connected group of `embeddings` with cosine >= `threshold` for `near`. The first row of each
    group is kept, so the result is reproducible."""
    if mode not in DEDUP_MODES:
        raise ValueError(f"dedup mode: unknown {mode!r}; known: {', '.join(DEDUP_MODES)}")
    if mode == "none":
        rows = images if images is not None else embeddings
        if rows is None:
            raise ValueError("dedup mode 'none': pass images or embeddings (for their count)")
        return np.arange(len(rows), dtype=np.int64)
    if mode == "exact":
        if images is None:
            raise ValueError("dedup mode 'exact': needs images")
        seen: set[bytes] = set()
        kept = []
        for index, image in enumerate(np.asarray(images)):
            digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()
            if digest not in seen:
                seen.add(digest)
                kept.append(index)
        return np.asarray(kept, dtype=np.int64)
    if embeddings is None:
        raise ValueError("dedup mode 'near': needs embeddings")
    from radio.replication.clustering import graph_labels

    labels = graph_labels(np.asarray(embeddings, dtype=np.float32), threshold=threshold, chunk=chunk)
    _, first = np.unique(labels, return_index=True)
    return np.sort(first).astype(np.int64)
