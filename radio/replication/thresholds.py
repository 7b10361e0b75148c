"""Replication thresholds under named rules, and the vectorised scoring of generations against a cluster.

A generation's score against a cluster is its highest cosine similarity to the cluster's training images (its
nearest training copy). It "replicates" the cluster under a rule when score >= that rule's threshold. The paper
sets each threshold by hand; here every rule is computed, named and reported, since the choice moves the headline
by 20-30 points (DESIGN §5):

- `least-similar-member`: the lowest cosine similarity of a member to the cluster centroid (the normalised mean
  of the members): a generation counts when it is as close to some training copy as the least typical training
  copy is to the artwork.
- `p5-member`: the 5th percentile of the same member-to-centroid similarities (stricter; robust to one odd copy).
- `highest-non-member`: the highest score (nearest-member similarity, as for a generation) of any non-member
  among the clustered rows: a generation counts when it is at least as close as the closest image outside the
  cluster. NaN when there is no non-member. Computed over the rows given: pass the keyword-filtered set, not the
  whole corpus, whose uncaptioned copies of the artwork would score as non-members.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

THRESHOLD_RULES = ("least-similar-member", "p5-member", "highest-non-member")

RULE_DEFINITIONS = {
    "least-similar-member": "min over members of cos(member, normalised member centroid)",
    "p5-member": "5th percentile over members of cos(member, normalised member centroid)",
    "highest-non-member": "max over non-members of max cos(non-member, member)",
}


@dataclass(frozen=True)
class Threshold:
    """A rule's threshold for one cluster: its name, value and definition."""

    rule: str
    value: float
    definition: str


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def nearest_member(queries: np.ndarray, members: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, its highest cosine similarity to any member row (both L2-normalised) and that member's
    index (the first on ties), in chunks of members."""
    queries = np.asarray(queries, dtype=np.float32)
    members = np.asarray(members, dtype=np.float32)
    if len(members) == 0:
        raise ValueError("members: the cluster has no members")
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    index = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(members), chunk):
        sims = queries @ members[start : start + chunk].T
        where = sims.argmax(axis=1)
        value = sims[np.arange(len(queries)), where]
        better = value > best
        best[better], index[better] = value[better], where[better] + start
    return best, index


def max_similarity(queries: np.ndarray, members: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """For each query row, its highest cosine similarity to any member row (both L2-normalised), in chunks."""
    return nearest_member(queries, members, chunk)[0]


def cluster_thresholds(embeddings: np.ndarray, members: np.ndarray) -> dict[str, Threshold]:
    """Thresholds of the cluster made of rows `members` of `embeddings` under every rule (THRESHOLD_RULES order)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    members = np.asarray(members, dtype=np.int64)
    if members.size == 0:
        raise ValueError("cluster_thresholds: the cluster has no members")
    member_vectors = embeddings[members]
    centroid = _unit(member_vectors.mean(axis=0))
    to_centroid = member_vectors @ centroid
    outside = np.ones(len(embeddings), dtype=bool)
    outside[members] = False
    non_member_best = max_similarity(embeddings[outside], member_vectors) if outside.any() else np.zeros(0)
    values = {
        "least-similar-member": float(to_centroid.min()),
        "p5-member": float(np.percentile(to_centroid, 5)),
        "highest-non-member": float(non_member_best.max()) if non_member_best.size else float("nan"),
    }
    return {rule: Threshold(rule, values[rule], RULE_DEFINITIONS[rule]) for rule in THRESHOLD_RULES}


@dataclass(frozen=True)
class ReplicationScores:
    """Scores of g generations against one cluster: `scores` (g,) nearest-member cosine similarities,
    `rules` the rule names and `flags` (len(rules), g) whether each generation replicates under each rule;
    `nearest` (g,) the index of each generation's nearest member."""

    scores: np.ndarray
    rules: tuple[str, ...]
    thresholds: tuple[float, ...]
    flags: np.ndarray
    nearest: np.ndarray

    def rates(self) -> dict[str, float]:
        """Share of generations replicating, per rule."""
        return {
            rule: float(self.flags[i].mean()) if self.flags.shape[1] else float("nan")
            for i, rule in enumerate(self.rules)
        }

    def counts(self) -> dict[str, int]:
        """Number of generations replicating, per rule."""
        return {rule: int(self.flags[i].sum()) for i, rule in enumerate(self.rules)}


def score_generations(
    generated: np.ndarray, member_embeddings: np.ndarray, thresholds: Mapping[str, float | Threshold]
) -> ReplicationScores:
    """Score many generations' embeddings against a cluster's member embeddings under every rule at once.

    A NaN threshold (rule undefined for this cluster) flags nothing.
    """
    scores, nearest = nearest_member(_unit(generated), _unit(member_embeddings))
    rules = tuple(thresholds)
    values = np.asarray(
        [t.value if isinstance(t, Threshold) else float(t) for t in thresholds.values()], dtype=np.float64
    )
    with np.errstate(invalid="ignore"):
        flags = scores[None, :].astype(np.float64) >= values[:, None]
    return ReplicationScores(
        scores=scores, rules=rules, thresholds=tuple(values.tolist()), flags=flags, nearest=nearest
    )
