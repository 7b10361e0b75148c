"""Shared fixtures of the replication tests: one small synthetic corpus per session (under a second to build)."""

from __future__ import annotations

from pathlib import Path

import pytest

from radio.replication.synthetic import SyntheticCorpusConfig

# A quarter of the 60 copies name the painter (the default's 15% of 200 would leave ~9 named copies: too few for
# the clustering tests' margins).
SMALL_CONFIG = SyntheticCorpusConfig(
    n_generic=200,
    n_painter_works=30,
    n_artist_works=120,
    n_planted=60,
    n_confounders=10,
    n_subject=100,
    n_scene=20,
    artist_full_share=0.2,
    artist_surname_share=0.05,
)


@pytest.fixture(scope="session")
def small_corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic corpus folder (seed 0), shared read-only by the tests."""
    from radio.replication.synthetic import build_synthetic_corpus

    return build_synthetic_corpus(tmp_path_factory.mktemp("synthetic"), SMALL_CONFIG, seed=0)
