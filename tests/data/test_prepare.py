"""The prepare stages: cached by config and inputs, never retrained on a warm run, never half-written."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import tiny_prepare_config

import radio.models.base as base_module
from radio.cache import MANIFEST
from radio.data import Prepared, prepare
from radio.models import VocabMismatchError, load_model, load_tokenizer, model_vocab_size


def test_prepare_outputs(prepared: Prepared) -> None:
    assert prepared.base_a_dir != prepared.base_b_dir
    assert prepared.hashes["base_a"] != prepared.hashes["base_b"]
    for folder in (prepared.base_a_dir, prepared.base_b_dir):
        manifest = json.loads((folder / MANIFEST).read_text())
        counts = manifest["counts"]
        assert counts["vocab_size"] == prepared.vocab_size == len(load_tokenizer(folder))
        assert counts["train_loss"] > 0 and counts["heldout_loss"] > 0 and counts["steps"] == 6
        assert model_vocab_size(load_model(folder)) == prepared.vocab_size
    seeds = [
        json.loads((f / MANIFEST).read_text())["config"]["seed"] for f in (prepared.base_a_dir, prepared.base_b_dir)
    ]
    assert seeds[0] != seeds[1]


def test_second_prepare_is_a_cache_hit(prepared: Prepared, cache_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a warm prepare must not train")

    monkeypatch.setattr(base_module, "pretrain", no_training)
    before = {p: (p / MANIFEST).stat().st_mtime_ns for p in (prepared.base_a_dir, prepared.base_b_dir)}
    start = time.perf_counter()
    again = prepare(tiny_prepare_config(), cache_root)
    assert time.perf_counter() - start < 30
    assert again.cached and again.hashes == prepared.hashes
    assert {p: (p / MANIFEST).stat().st_mtime_ns for p in before} == before


def test_failure_mid_build_leaves_no_complete_folder(prepared: Prepared, cache_root: Path, monkeypatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("interrupted")

    cfg = tiny_prepare_config()
    cfg = replace(cfg, pretrain=replace(cfg.pretrain, steps=7))  # a new base hash
    monkeypatch.setattr(base_module, "pretrain", boom)
    with pytest.raises(RuntimeError, match=r"interrupted"):
        prepare(cfg, cache_root)
    leftovers = [p for p in (cache_root / "base").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
    complete = [p for p in (cache_root / "base").iterdir() if (p / MANIFEST).is_file()]
    assert sorted(complete) == sorted([prepared.base_a_dir, prepared.base_b_dir])


def test_local_bases_with_different_tokenizers_are_rejected(prepared: Prepared, tmp_path: Path) -> None:
    from test_loading import save_checkpoint

    other = save_checkpoint(tmp_path / "other", vocab_size=300)
    cfg = replace(tiny_prepare_config(), base_a=prepared.base_a_dir, base_b=other)
    with pytest.raises(VocabMismatchError, match=r"base_a.*base_b"):
        prepare(cfg)
    same = prepare(replace(tiny_prepare_config(), base_a=prepared.base_a_dir, base_b=prepared.base_b_dir))
    assert same.vocab_size == prepared.vocab_size and same.corpus_dir is None


def test_bases_built_in_two_processes(prepared: Prepared, cache_root: Path) -> None:
    # New seeds: new base stages, while corpus and tokenizer are cache hits (no second stdlib parse).
    cfg = replace(tiny_prepare_config(), workers=2, seed_a=11, seed_b=12)
    parallel = prepare(cfg, cache_root)
    assert not parallel.cached
    assert parallel.hashes["tokenizer"] == prepared.hashes["tokenizer"]
    assert parallel.hashes["base_a"] not in prepared.hashes.values()
    for folder in (parallel.base_a_dir, parallel.base_b_dir):
        counts = json.loads((folder / MANIFEST).read_text())["counts"]
        assert counts["steps"] == 6 and counts["vocab_size"] == prepared.vocab_size
    assert prepare(cfg, cache_root).cached
