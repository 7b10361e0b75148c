"""Word pull: how much of the keyword-filtered data holding a word falls into the planted cluster.

The paper's Van Gogh analysis: among LAION captions holding "van gogh", 52% of those also holding "almond
blossoming" lie in the almond-blossom cluster, against 2% of those holding "sunflower". A high share means the
word points at one memorised image; a low one means the word is spread over many images.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from radio.replication.clustering import STOPWORDS, caption_words
from radio.replication.keywords import keyword_pattern


@dataclass(frozen=True)
class WordPull:
    """Of the `n_with_word` filtered captions holding `word`, `n_in_cluster` belong to the cluster; `share` is
    their ratio."""

    word: str
    n_with_word: int
    n_in_cluster: int
    share: float


def word_pull(
    captions: Sequence[str],
    in_cluster: np.ndarray,
    words: Iterable[str] | None = None,
    min_count: int = 5,
    stopwords: Iterable[str] = STOPWORDS,
) -> list[WordPull]:
    """Pull of each word (or phrase, matched on word boundaries) over the filtered `captions`, where `in_cluster`
    (bool, one per caption) marks the cluster's members. Without `words`, every non-stopword held by at least
    `min_count` captions. Sorted by decreasing share, then decreasing count, then word."""
    mask = np.asarray(in_cluster, dtype=bool)
    if mask.shape != (len(captions),):
        raise ValueError(f"in_cluster: expected {len(captions)} flags, got shape {mask.shape}")
    if words is None:
        banned = set(stopwords)
        counts: Counter[str] = Counter()
        for caption in captions:
            counts.update(w for w in caption_words(caption) if w not in banned and not w.isdigit())
        chosen = [w for w, c in counts.items() if c >= min_count]
    else:
        chosen = list(words)
    rows = []
    for word in chosen:
        pattern = keyword_pattern(word)
        holds = np.fromiter((bool(pattern.search(c)) for c in captions), dtype=bool, count=len(captions))
        n_with = int(holds.sum())
        if n_with == 0:
            rows.append(WordPull(word, 0, 0, float("nan")))
            continue
        n_in = int((holds & mask).sum())
        rows.append(WordPull(word, n_with, n_in, n_in / n_with))
    return sorted(rows, key=lambda r: (-(r.share if r.share == r.share else -1.0), -r.n_with_word, r.word))
