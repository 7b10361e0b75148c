"""Thresholds under every rule against hand computations, and the vectorised scoring against a loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radio.replication.thresholds import THRESHOLD_RULES, cluster_thresholds, max_similarity, score_generations


def _unit_angles(degrees):
    radians = np.radians(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


def test_thresholds_by_hand():
    """Members at 0, 10, 20 degrees (centroid at 10): least similar member cos 10°; p5 interpolates between the
    sorted values cos10, cos10, cos0 at 5% -> cos10; the nearest non-member (50°) is 30° from the 20° member."""
    embeddings = _unit_angles([0, 10, 20, 50, 120])
    thresholds = cluster_thresholds(embeddings, np.array([0, 1, 2]))
    assert tuple(thresholds) == THRESHOLD_RULES
    assert thresholds["least-similar-member"].value == pytest.approx(math.cos(math.radians(10)), abs=1e-6)
    assert thresholds["p5-member"].value == pytest.approx(math.cos(math.radians(10)), abs=1e-6)
    assert thresholds["highest-non-member"].value == pytest.approx(math.cos(math.radians(30)), abs=1e-6)
    assert all(t.rule == name and t.definition for name, t in thresholds.items())
    everything = cluster_thresholds(embeddings, np.arange(5))
    assert math.isnan(everything["highest-non-member"].value)


def test_p5_against_numpy_percentile():
    rng = np.random.default_rng(0)
    members = rng.normal(size=(200, 8)) + 4
    members /= np.linalg.norm(members, axis=1, keepdims=True)
    thresholds = cluster_thresholds(members, np.arange(200))
    centroid = members.mean(axis=0)
    centroid /= np.linalg.norm(centroid)
    to_centroid = members @ centroid
    assert thresholds["p5-member"].value == pytest.approx(np.percentile(to_centroid, 5), abs=1e-5)
    assert thresholds["least-similar-member"].value == pytest.approx(to_centroid.min(), abs=1e-5)


def test_vectorised_scoring_equals_a_loop():
    rng = np.random.default_rng(1)
    members = rng.normal(size=(40, 6)).astype(np.float32)
    generated = rng.normal(size=(25, 6)).astype(np.float32)
    thresholds = {"a": 0.2, "b": 0.5, "undefined": float("nan")}
    result = score_generations(generated, members, thresholds)
    m = members / np.linalg.norm(members, axis=1, keepdims=True)
    for i, g in enumerate(generated):
        best = max(float(g @ row) / float(np.linalg.norm(g)) for row in m)
        assert result.scores[i] == pytest.approx(best, abs=1e-5)
    assert result.rules == ("a", "b", "undefined")
    np.testing.assert_array_equal(result.flags[0], result.scores >= 0.2)
    np.testing.assert_array_equal(result.flags[1], result.scores >= 0.5)
    assert not result.flags[2].any()
    assert result.counts()["a"] == int((result.scores >= 0.2).sum())
    assert result.rates()["b"] == pytest.approx(float((result.scores >= 0.5).mean()))
    np.testing.assert_allclose(
        max_similarity(generated / np.linalg.norm(generated, axis=1, keepdims=True), m, chunk=7),
        result.scores,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="no members"):
        max_similarity(generated, members[:0])
