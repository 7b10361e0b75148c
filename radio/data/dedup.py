"""Removal of empty, duplicate and near-duplicate answers from generated data.

Near-duplicates: an answer is dropped when at least `threshold` of its distinct token n-grams occur in one single
answer kept before it (containment, checked through an inverted index, so the cost is linear in the data). N-grams
shared by more than `_COMMON` kept answers are common phrases, not evidence of copying, and are ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

_COMMON = 50


def _ngrams(ids: Sequence[int], n: int) -> set[tuple[int, ...]]:
    return {tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)}


def dedup_answers(
    answers: Sequence[Sequence[int]], texts: Sequence[str], n: int, threshold: float, min_tokens: int
) -> tuple[list[int], dict[str, int]]:
    """Indices of answers to keep (in order) and the number dropped for each reason."""
    kept: list[int] = []
    dropped = {"dropped_short": 0, "dropped_duplicate": 0, "dropped_near_duplicate": 0}
    seen_texts: set[str] = set()
    index: dict[tuple[int, ...], list[int]] = {}
    for i, (ids, text) in enumerate(zip(answers, texts, strict=True)):
        if len(ids) < min_tokens or not text.strip():
            dropped["dropped_short"] += 1
            continue
        key = " ".join(text.lower().split())
        if key in seen_texts:
            dropped["dropped_duplicate"] += 1
            continue
        grams = _ngrams(ids, n)
        if grams:
            overlap: Counter[int] = Counter()
            for gram in grams:
                owners = index.get(gram, ())
                if len(owners) <= _COMMON:
                    overlap.update(owners)
            if overlap and overlap.most_common(1)[0][1] / len(grams) >= threshold:
                dropped["dropped_near_duplicate"] += 1
                continue
        seen_texts.add(key)
        kept.append(i)
        for gram in grams:
            index.setdefault(gram, []).append(i)
    return kept, dropped
