"""Fixtures of the radioactivity tests: the tiny pipeline (built once per session) and one torch thread per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from radio_pipeline import Pipeline, build_pipeline, torch_threads


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny models run several times faster on one thread than on two on a shared 2-core machine."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """Bases, watermarked and plain data, rho = 1 / rho = 0 mixes and fine-tuned models (about 1-2 minutes)."""
    return build_pipeline(Path(tmp_path_factory.mktemp("radioactivity-cache")))
