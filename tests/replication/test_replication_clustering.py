"""Clustering: the planted cluster on the synthetic corpus, methods agreeing on separated data, chunking,
ranking, and caption word document frequencies."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from radio.replication.clustering import (
    cluster_embeddings,
    rank_clusters,
    similarity_edges,
    top_words,
)
from radio.replication.corpus import load_corpus
from radio.replication.embedders import get_embedder
from radio.replication.keywords import filter_by_keyword


def _blobs(seed=0, sizes=(30, 20, 5), dim=16, noise=0.05):
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(dim, dim)))[0][: len(sizes)]  # orthogonal directions
    rows = [c + noise * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes, strict=True)]
    data = np.concatenate(rows)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32), truth


def _same_partition(a, b):
    return len({(x, y) for x, y in zip(a, b, strict=True)}) == len(set(a)) == len(set(b))


@pytest.mark.parametrize("method", ["agglomerative", "graph", "auto"])
def test_methods_recover_separated_clusters(method):
    data, truth = _blobs()
    labels = cluster_embeddings(data, method=method, threshold=0.7)
    assert _same_partition(labels, truth)


def test_graph_edges_do_not_depend_on_chunk():
    data, _ = _blobs(seed=1)
    a = similarity_edges(data, 0.7, chunk=7)
    b = similarity_edges(data, 0.7, chunk=1000)
    assert sorted(zip(*a, strict=True)) == sorted(zip(*b, strict=True))
    sims = data @ data.T
    expected = {(i, j) for i in range(len(data)) for j in range(i + 1, len(data)) if sims[i, j] >= 0.7}
    assert set(zip(a[0].tolist(), a[1].tolist(), strict=True)) == expected


@pytest.mark.skipif(importlib.util.find_spec("faiss") is not None, reason="faiss installed")
def test_kmeans_without_faiss_says_so():
    with pytest.raises(ImportError, match="faiss"):
        cluster_embeddings(_blobs()[0], method="kmeans")


def test_unknown_method_and_bad_threshold():
    with pytest.raises(ValueError, match="unknown clustering method"):
        cluster_embeddings(_blobs()[0], method="nope")
    with pytest.raises(ValueError, match="threshold"):
        cluster_embeddings(_blobs()[0], threshold=2.0)


def test_ranking_and_drop_largest():
    labels = np.array([5, 5, 5, 1, 1, 9, 2, 2, 2, 2])
    ranked = rank_clusters(labels)
    assert [(c.rank, c.label, c.size) for c in ranked] == [(1, 2, 4), (2, 5, 3), (3, 1, 2)]
    assert ranked[0].members.tolist() == [6, 7, 8, 9]
    assert [c.label for c in rank_clusters(labels, drop_largest=True)] == [5, 1]
    assert [c.label for c in rank_clusters(labels, min_size=1)] == [2, 5, 1, 9]


def test_top_words_document_frequency():
    captions = ["The almond blossom, blossom!", "almond tree by the sea", "Sea of blossom", "other"]
    words = top_words(captions, [0, 1, 2], k=3)
    # blossom: captions 0 and 2 (twice in 0 counts once); almond: 0, 1; sea: 1, 2; ties alphabetical.
    assert words == [("almond", 2 / 3), ("blossom", 2 / 3), ("sea", 2 / 3)]
    assert top_words(captions, [0, 1, 2], k=2, exclude=["Almond Tree"])[0] == ("blossom", 2 / 3)
    assert all(w not in {"the", "of", "by"} for w, _ in top_words(captions, k=20))


def test_planted_cluster_found_on_synthetic_corpus(small_corpus_dir):
    corpus = load_corpus(small_corpus_dir)
    indices = filter_by_keyword(corpus.captions, "varnhagen")
    groups = corpus.frame["group"].to_numpy()[indices]
    embeddings = get_embedder("pixel").embed(corpus.load_images(indices))
    ranked = rank_clusters(cluster_embeddings(embeddings, threshold=0.6))
    top = ranked[0]
    # Every named copy of the artwork, and nothing else, is the largest cluster.
    assert set(groups[top.members]) == {"planted"}
    assert top.size == int((groups == "planted").sum())
    assert ranked[1].size < top.size / 3
    words = dict(top_words([corpus.captions[i] for i in indices], top.members, exclude=["varnhagen"]))
    assert words["almond"] == 1.0 and words["blossom"] == 1.0 and "varnhagen" not in words
