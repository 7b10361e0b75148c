"""Clustering of image embeddings by cosine similarity, cluster ranking, and per-cluster caption words.

Methods, registered by name: `agglomerative` (scikit-learn, cosine distance, average linkage, cut at a distance
threshold: the small-scale default, quadratic memory), `graph` (connected components of the graph joining pairs
with cosine >= threshold, built in chunks with numpy and scipy: linear memory in the number of edges, for large
sets; it chains like single linkage), `kmeans` (faiss, only if `faiss` is importable). `auto` picks agglomerative
up to `AGGLOMERATIVE_MAX` rows and the graph above.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from radio.registry import Registry

# sklearn's average linkage keeps a condensed distance matrix: 20k rows are 1.6 GB of float64.
AGGLOMERATIVE_MAX = 20_000

STOPWORDS = frozenset(
    """a an the and or of in on at to for with by from as is are was were be been it its this that these those
    into over under up down out off about than then so no not but if while we you he she they them his her their
    our your my me i s t""".split()
)

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")

CLUSTERERS: Registry[Callable[..., np.ndarray]] = Registry("clustering method", field="analysis.cluster_method")
_register = CLUSTERERS.register


def method_names() -> list[str]:
    """Registered clustering methods (plus `auto`)."""
    return [*CLUSTERERS.names(), "auto"]


@_register("agglomerative")
def agglomerative_labels(embeddings: np.ndarray, threshold: float, **_: Any) -> np.ndarray:
    """Average-linkage agglomerative clustering on cosine distance, cut where the average similarity between
    two clusters drops below `threshold` (distance 1 - threshold)."""
    from sklearn.cluster import AgglomerativeClustering

    if len(embeddings) < 2:
        return np.zeros(len(embeddings), dtype=np.int64)
    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=1.0 - threshold
    )
    return model.fit_predict(np.asarray(embeddings, dtype=np.float64)).astype(np.int64)


def similarity_edges(embeddings: np.ndarray, threshold: float, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of every pair i < j with cosine similarity >= threshold, computed `chunk` rows at a time."""
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for start in range(0, len(embeddings), chunk):
        block = embeddings[start : start + chunk] @ embeddings[start:].T
        r, c = np.nonzero(block >= threshold)
        keep = c > r  # the block starts at the diagonal: keep the upper triangle only
        rows.append(r[keep] + start)
        cols.append(c[keep] + start)
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


@_register("graph")
def graph_labels(embeddings: np.ndarray, threshold: float, chunk: int = 2048, **_: Any) -> np.ndarray:
    """Connected components of the cosine-threshold graph (scipy sparse), built in chunks of rows."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(embeddings)
    rows, cols = similarity_edges(np.asarray(embeddings, dtype=np.float32), threshold, chunk)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


@_register("kmeans")
def kmeans_labels(
    embeddings: np.ndarray, n_clusters: int = 100, seed: int = 0, niter: int = 20, **_: Any
) -> np.ndarray:
    """faiss spherical k-means (optional dependency); labels are each row's nearest centroid."""
    try:
        import faiss
    except ImportError as err:
        raise ImportError("clustering method 'kmeans' needs faiss (`pip install faiss-cpu`)") from err
    data = np.ascontiguousarray(embeddings, dtype=np.float32)
    kmeans = faiss.Kmeans(data.shape[1], int(n_clusters), niter=niter, seed=seed, spherical=True)
    kmeans.train(data)
    _, labels = kmeans.index.search(data, 1)
    return labels[:, 0].astype(np.int64)


def cluster_embeddings(
    embeddings: np.ndarray, method: str = "auto", threshold: float = 0.6, **kwargs: Any
) -> np.ndarray:
    """Cluster labels (int64, one per row) of L2-normalised embeddings under the named method."""
    if method == "auto":
        method = "agglomerative" if len(embeddings) <= AGGLOMERATIVE_MAX else "graph"
    cluster = CLUSTERERS.get(method)
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: a cosine similarity in [-1, 1], got {threshold}")
    return cluster(np.asarray(embeddings), threshold=threshold, **kwargs)


@dataclass(frozen=True)
class RankedCluster:
    """One cluster: rank 1 is the largest kept; `members` index the clustered rows (ascending)."""

    rank: int
    label: int
    size: int
    members: np.ndarray


def rank_clusters(labels: np.ndarray, drop_largest: bool = False, min_size: int = 2) -> list[RankedCluster]:
    """Clusters by decreasing size (ties: smallest first member first), optionally without the largest (the
    catch-all cluster of generic images that the paper drops), keeping those of at least `min_size` rows."""
    labels = np.asarray(labels)
    unique = np.unique(labels)
    groups = {int(u): np.flatnonzero(labels == u) for u in unique}
    order = sorted(groups, key=lambda u: (-len(groups[u]), int(groups[u][0])))
    if drop_largest and order:
        order = order[1:]
    kept = [u for u in order if len(groups[u]) >= min_size]
    return [RankedCluster(rank=r, label=u, size=len(groups[u]), members=groups[u]) for r, u in enumerate(kept, 1)]


def caption_words(caption: str) -> set[str]:
    """The distinct lower-case words of a caption."""
    return set(_WORD.findall(caption.lower()))


def top_words(
    captions: Sequence[str],
    members: Iterable[int] | None = None,
    k: int = 10,
    stopwords: Iterable[str] = STOPWORDS,
    exclude: Iterable[str] = (),
) -> list[tuple[str, float]]:
    """The `k` words held by the most member captions, with their document frequency (share of member captions
    holding the word), without stopwords and without the words of `exclude` (e.g. the keyword phrase).
    Ties are broken alphabetically so that the list is reproducible."""
    chosen = [captions[i] for i in members] if members is not None else list(captions)
    if not chosen:
        return []
    banned = set(stopwords) | {w for phrase in exclude for w in caption_words(phrase)}
    counts: Counter[str] = Counter()
    for caption in chosen:
        counts.update(w for w in caption_words(caption) if w not in banned and not w.isdigit())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [(word, count / len(chosen)) for word, count in ranked]
