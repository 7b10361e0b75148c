"""The analysis stage's reference set (the nearest-training-image grids and the "copies a training image" labels):
the whole corpus up to `reference_max`, and above it the keyword-filtered and subject rows plus a seeded sample."""

from __future__ import annotations

import numpy as np
import pytest

from radio.replication.audit import ARRAYS, AnalysisConfig, analyse_corpus, embed_rows, reference_set


def test_reference_set_is_the_whole_corpus_under_the_cap_and_a_seeded_sample_above() -> None:
    kept = [np.array([3, 5, 7]), np.array([7, 8])]
    assert reference_set(10, kept, 10).tolist() == list(range(10))
    assert reference_set(10, kept, 50).tolist() == list(range(10))
    capped = reference_set(100, kept, 20, seed=1)
    assert capped.size == 20 and np.unique(capped).size == 20 and (np.diff(capped) > 0).all()
    assert {3, 5, 7, 8} <= set(capped.tolist())  # the kept rows first, then 16 of the other 96
    assert capped.tolist() == reference_set(100, kept, 20, seed=1).tolist()  # seeded
    assert capped.tolist() != reference_set(100, kept, 20, seed=2).tolist()
    assert reference_set(100, kept, 2).tolist() == [3, 5]  # the kept rows alone exceed the cap
    with pytest.raises(ValueError, match="reference_max"):
        reference_set(10, kept, 0)


def test_analysis_reference_covers_the_whole_corpus(tmp_path, small_corpus_dir) -> None:
    from radio.replication.corpus import load_corpus
    from radio.replication.embedders import get_embedder
    from radio.replication.keywords import filter_by_keyword

    cfg = AnalysisConfig()
    whole = tmp_path / "whole"
    whole.mkdir()
    result = analyse_corpus(cfg, small_corpus_dir, whole)
    arrays = np.load(whole / ARRAYS)
    assert arrays["reference_rows"].tolist() == list(range(result.n_corpus))  # 570 rows, under the 20,000 cap
    corpus = load_corpus(small_corpus_dir, check_images=False)
    expected = embed_rows(corpus, np.arange(len(corpus)), get_embedder(cfg.embedder), cfg.embedder, cfg.image_size)
    np.testing.assert_allclose(arrays["reference"], expected, atol=1e-6)
    groups = corpus.frame["group"].to_numpy()[arrays["reference_rows"]]
    assert {"generic", "painter", "planted", "confounder", "subject", "scene"} <= set(groups)
    # every member of the target cluster is in the reference, with the same embedding
    where = np.searchsorted(arrays["reference_rows"], arrays["member_rows"])
    np.testing.assert_allclose(arrays["reference"][where], arrays["members"], atol=1e-6)

    capped = tmp_path / "capped"
    capped.mkdir()
    analyse_corpus(AnalysisConfig(reference_max=300), small_corpus_dir, capped)
    rows = np.load(capped / ARRAYS)["reference_rows"]
    filtered = filter_by_keyword(corpus.captions, cfg.keyword, cfg.max_tokens, cfg.tokenizer)
    subject = filter_by_keyword(corpus.captions, cfg.subject_keyword, None)
    assert filtered.size + subject.size < 300
    assert rows.size == 300 and set(filtered.tolist()) | set(subject.tolist()) <= set(rows.tolist())
    assert {"generic", "scene"} <= set(corpus.frame["group"].to_numpy()[rows])  # the sample of the other rows
