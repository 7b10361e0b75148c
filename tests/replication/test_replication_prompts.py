"""Prompt sets: the five kinds and controls from templates, and prompts files with unknown kinds rejected."""

from __future__ import annotations

import pytest

from radio.replication.prompts import (
    WORD_KINDS,
    Prompt,
    is_valid_kind,
    read_prompts,
    template_prompts,
    write_prompts,
)


def test_kind_names():
    assert WORD_KINDS == (
        "keywords",
        "short-related",
        "long-related",
        "unrelated-with-keywords",
        "cooccurring-without-keywords",
    )
    assert is_valid_kind("control-unrelated") and is_valid_kind("control-scene_2")
    assert not is_valid_kind("control-") and not is_valid_kind("Keywords") and not is_valid_kind("control-A")
    with pytest.raises(ValueError, match="unknown prompt kind 'short'"):
        Prompt("short", "x")
    with pytest.raises(ValueError, match="empty text"):
        Prompt("keywords", "  ")


def test_templates_from_cluster_words():
    top = ["almond", "Varnhagen", "blossom", "elise", "oil", "canvas", "print", "art", "museum", "framed"]
    prompts = template_prompts("Elise Varnhagen", top, controls={"unrelated": "a bicycle", "other": "a dog"})
    by_kind = {p.kind: p.prompt for p in prompts}
    assert list(by_kind) == [*WORD_KINDS, "control-unrelated", "control-other"]
    assert by_kind["keywords"] == "Elise Varnhagen"
    assert by_kind["short-related"] == "almond blossom Elise Varnhagen"
    assert by_kind["long-related"].startswith("almond blossom oil canvas print art museum framed")
    assert by_kind["unrelated-with-keywords"].endswith("Elise Varnhagen")
    cooccurring = by_kind["cooccurring-without-keywords"].lower().split()
    assert "varnhagen" not in cooccurring and "elise" not in cooccurring and len(cooccurring) == 8
    assert by_kind["control-other"] == "a dog"
    with pytest.raises(ValueError, match="no top word"):
        template_prompts("elise", ["Elise"])


def test_prompts_files_round_trip_and_errors(tmp_path):
    prompts = template_prompts("varnhagen", ["almond", "blossom"])
    path = write_prompts(tmp_path / "p.jsonl", prompts)
    assert read_prompts(path) == prompts
    (tmp_path / "p.yaml").write_text(
        "prompts:\n  - {kind: keywords, prompt: van gogh}\n  - {kind: control-x, prompt: a cat}\n"
    )
    assert read_prompts(tmp_path / "p.yaml") == [Prompt("keywords", "van gogh"), Prompt("control-x", "a cat")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "keywords", "prompt": "a"}\n\n{"kind": "related", "prompt": "b"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: unknown kind 'related'"):
        read_prompts(bad)
    bad.write_text('{"kind": "keywords", "prompt": "a", "seed": 3}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: unknown field\(s\) seed"):
        read_prompts(bad)
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: malformed JSON"):
        read_prompts(bad)
    (tmp_path / "bad.yaml").write_text("- {kind: keywords, prompt: a}\n- {kind: nope, prompt: b}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: item 2: unknown kind 'nope'"):
        read_prompts(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError, match="prompts file not found"):
        read_prompts(tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no prompts"):
        read_prompts(tmp_path / "empty.jsonl")
