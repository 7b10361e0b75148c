"""Corpus extraction and splitting: deterministic, non-empty, disjoint; local sources replace the default."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from radio.config import ConfigError
from radio.data.corpus import (
    CorpusConfig,
    EmptyCorpusError,
    build_corpus,
    load_split,
    read_documents,
    source_fingerprint,
    split_documents,
    stdlib_docstrings,
)

DOCS = [f"Document number {i}: explains how the function number {i} behaves." for i in range(60)]


def test_stdlib_docstrings_are_deterministic_and_large() -> None:
    first = stdlib_docstrings()
    assert first == stdlib_docstrings()
    assert len(first) > 1000
    assert sum(map(len, first)) > 500_000  # about 1.7 MB on CPython 3.11
    assert source_fingerprint(CorpusConfig()) == source_fingerprint(CorpusConfig())


def test_split_is_disjoint_deduplicated_and_seeded() -> None:
    docs = [*DOCS, DOCS[0], "  " + DOCS[1].upper() + " ", "too short"]
    cfg = CorpusConfig(min_chars=20, heldout_fraction=0.2, seed=3)
    splits = split_documents(docs, cfg)
    assert splits == split_documents(docs, cfg)
    assert splits != split_documents(docs, CorpusConfig(min_chars=20, heldout_fraction=0.2, seed=4))
    a, b, held = (set(splits[s]) for s in ("a", "b", "heldout"))
    assert not (a & b) and not (a & held) and not (b & held)
    assert len(splits["a"]) == len(splits["b"])
    assert len(held) == round(0.2 * 61)  # 60 unique long documents + the upper-cased copy
    assert "too short" not in a | b | held


@pytest.mark.parametrize("kind", ["txt", "jsonl", "parquet", "disk"])
def test_local_sources(tmp_path: Path, kind: str) -> None:
    if kind == "txt":
        source = tmp_path / "c.txt"
        source.write_text("\n\n".join(DOCS))
    elif kind == "jsonl":
        source = tmp_path / "c.jsonl"
        source.write_text("".join(json.dumps({"body": d}) + "\n" for d in DOCS))
    elif kind == "parquet":
        source = tmp_path / "c.parquet"
        pq.write_table(pa.table({"body": DOCS}), source)
    else:
        source = tmp_path / "c"
        datasets.Dataset.from_dict({"body": DOCS}).save_to_disk(str(source))
    field = "text" if kind == "txt" else "body"
    cfg = CorpusConfig(source=str(source), text_field=field, min_chars=10)
    assert read_documents(cfg) == DOCS
    out = build_corpus(cfg, tmp_path / "cache")
    total = sum(len(load_split(out.path, s)) for s in ("a", "b", "heldout"))
    assert total == 60 and out.manifest["counts"]["heldout_docs"] == 6


def test_bad_sources_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"corpus.source"):
        read_documents(CorpusConfig(source=str(tmp_path / "missing.txt")))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(EmptyCorpusError, match=r"corpus.source"):
        split_documents(read_documents(CorpusConfig(source=str(empty))), CorpusConfig(source=str(empty)))
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"body": "x"}\n')
    with pytest.raises(ConfigError, match=r"corpus.text_field"):
        read_documents(CorpusConfig(source=str(jsonl)))
    with pytest.raises(ConfigError, match=r"corpus.heldout_fraction"):
        CorpusConfig(heldout_fraction=1.0)
