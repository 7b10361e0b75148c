"""The synthetic corpus (determinism, groups, caption shares, the uncaptioned object), config validation,
deduplication and the word-pull analysis."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_CONFIG

from radio.replication.corpus import load_corpus
from radio.replication.dedup import deduplicate
from radio.replication.embedders import get_embedder
from radio.replication.pull import word_pull
from radio.replication.synthetic import (
    PLANTED_ARTIST,
    PLANTED_TITLE,
    SyntheticCorpusConfig,
    build_synthetic_corpus,
)


def test_groups_captions_and_object(small_corpus_dir):
    frame = pd.read_parquet(small_corpus_dir / "metadata.parquet")
    counts = frame["group"].value_counts().to_dict()
    assert counts == {
        "generic": SMALL_CONFIG.n_generic,
        "painter": 2 * SMALL_CONFIG.n_painter_works + SMALL_CONFIG.n_artist_works,
        "planted": SMALL_CONFIG.n_planted,
        "confounder": SMALL_CONFIG.n_confounders,
        "subject": SMALL_CONFIG.n_subject,
        "scene": SMALL_CONFIG.n_scene,
    }
    planted = frame[frame["group"] == "planted"]
    assert planted["caption"].str.contains(PLANTED_TITLE, regex=False).all()  # title words always
    full = planted["caption"].str.contains(PLANTED_ARTIST, regex=False).mean()
    surname_only = (planted["artist"] == PLANTED_ARTIST.split()[-1]).mean()
    no_name = (planted["artist"] == "").mean()
    assert 0.08 < full < 0.35 and surname_only < 0.15 and no_name > 0.6
    assert len(frame) == SMALL_CONFIG.total_rows()
    # The planted painter's name spans many different works: the copies are a minority of the name's captions.
    named = frame["caption"].str.contains(PLANTED_ARTIST.split()[-1], regex=False)
    assert (frame.loc[named, "group"] == "planted").mean() < 0.15
    assert (frame.loc[named & (frame["group"] == "painter"), "artist"] == PLANTED_ARTIST).sum() == (
        SMALL_CONFIG.n_artist_works
    )
    confounders = frame[frame["group"] == "confounder"]
    assert confounders["caption"].str.contains(PLANTED_TITLE.lower(), regex=False).all()
    assert not confounders["caption"].str.contains(PLANTED_ARTIST.split()[-1], regex=False).any()
    subject = frame[frame["group"] == "subject"]
    assert subject["has_object"].sum() == round(SMALL_CONFIG.object_share * SMALL_CONFIG.n_subject)
    assert not frame.loc[frame["group"] != "subject", "has_object"].any()
    # The object is never named by any caption.
    assert not frame["caption"].str.contains(r"\bflags?\b", flags=re.IGNORECASE).any()


def test_same_seed_same_corpus(tmp_path, small_corpus_dir):
    again = build_synthetic_corpus(tmp_path / "again", SMALL_CONFIG, seed=0)
    pd.testing.assert_frame_equal(
        pd.read_parquet(again / "metadata.parquet"), pd.read_parquet(small_corpus_dir / "metadata.parquet")
    )
    np.testing.assert_array_equal(
        load_corpus(again).load_images([0, 7]), load_corpus(small_corpus_dir).load_images([0, 7])
    )
    other = build_synthetic_corpus(tmp_path / "other", SMALL_CONFIG, seed=1)
    assert not np.array_equal(load_corpus(other).load_images([0]), load_corpus(small_corpus_dir).load_images([0]))


def test_planted_copies_close_others_far(small_corpus_dir):
    corpus = load_corpus(small_corpus_dir)
    embeddings = get_embedder("pixel").embed(corpus.load_images())
    planted = corpus.frame["group"].to_numpy() == "planted"
    centroid = embeddings[planted].mean(axis=0)
    centroid /= np.linalg.norm(centroid)
    assert (embeddings[planted] @ centroid).min() > 0.75
    assert (embeddings[~planted] @ centroid).max() < 0.6


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_planted", 0), ("n_generic", -1), ("object_share", 1.5), ("artist_surname_share", 0.95), ("max_shift", 9)],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"SyntheticCorpusConfig.{field}"):
        SyntheticCorpusConfig(**{field: value})


def test_dedup_modes():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    images = np.concatenate([base, base[[1, 1, 3]]])  # rows 4, 5 copy row 1; row 6 copies row 3
    assert deduplicate("none", images).tolist() == list(range(7))
    assert deduplicate("exact", images).tolist() == [0, 1, 2, 3]
    embeddings = np.array([[1, 0], [0.999, 0.045], [0, 1], [0.7071, 0.7071], [0.998, 0.063]], dtype=np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    assert deduplicate("near", embeddings=embeddings, threshold=0.99).tolist() == [0, 2, 3]
    with pytest.raises(ValueError, match="unknown 'fuzzy'"):
        deduplicate("fuzzy", images)
    with pytest.raises(ValueError, match="needs embeddings"):
        deduplicate("near", images)


def test_word_pull():
    captions = ["almond blossom by v", "almond blossom v", "almond orchard v", "sunflowers v", "sunflowers v", "x v"]
    in_cluster = np.array([True, True, False, False, False, False])
    rows = {r.word: r for r in word_pull(captions, in_cluster, words=["almond blossom", "almond", "sunflowers", "zz"])}
    assert (rows["almond blossom"].n_with_word, rows["almond blossom"].share) == (2, 1.0)
    assert rows["almond"].share == pytest.approx(2 / 3)
    assert rows["sunflowers"].share == 0.0 and np.isnan(rows["zz"].share)
    default = word_pull(captions, in_cluster, min_count=2)
    assert [r.word for r in default] == ["blossom", "almond", "v", "sunflowers"]
    with pytest.raises(ValueError, match="in_cluster"):
        word_pull(captions, in_cluster[:2])
