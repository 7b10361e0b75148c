"""The miniature instruction file: one chat instruction per held-out summary line, read as generate.prompts is."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from radio.data.instructions import FIELD, FILE_NAME, TEMPLATES, build_instructions, instruction_texts
from radio.data.pipeline import default_prompts
from radio.data.prepare import Prepared
from radio.data.prompts import read_prompt_texts


def test_one_instruction_per_usable_summary_line() -> None:
    docs = [
        "Return the number of items in the queue.\n\nMore detail.",
        "Helper.",  # too short to ask about
        "Return the number of items in the queue.",  # same summary: asked once
        "Open a file   and return\ta stream.",
    ]
    texts = instruction_texts(docs)
    assert texts == [
        TEMPLATES[0].format(summary="Return the number of items in the queue."),
        TEMPLATES[3].format(summary="Open a file and return a stream."),
    ]


def test_chat_style_prompts_come_from_the_stage(prepared: Prepared, cache_root: Path) -> None:
    # As a sweep's data stage builds it: the prepared folders without their hashes
    prepared = dataclasses.replace(prepared, hashes={})
    path = default_prompts(prepared, "chat", cache_root)
    assert path.name == FILE_NAME and path.is_file()
    texts = read_prompt_texts(path, FIELD)
    assert texts and all(any(t.startswith(tpl.split("{")[0]) for tpl in TEMPLATES) for t in texts)
    assert json.loads(path.read_text().splitlines()[0]).keys() == {FIELD}
    again = build_instructions(prepared.corpus_dir, cache_root)  # type: ignore[arg-type]
    assert again.cached and again.path == path.parent
    assert default_prompts(prepared, "auto", cache_root) == prepared.corpus_dir / "heldout"  # type: ignore[operator]
