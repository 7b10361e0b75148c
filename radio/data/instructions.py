"""Chat-style instructions made from the held-out corpus: a miniature of the paper's instruction file.

The paper's A is a chat model answering self-instruct prompts read from a local file. The miniature needs the same
path (a JSONL file of instructions, read by `generate.prompts` rules, wrapped in the tokenizer's chat template) with
text present on every machine: each held-out document's summary line (the first line of a docstring, e.g. "Return
the number of items in the queue.") becomes one instruction through one of a few fixed templates, chosen by the
document's position. The held-out split stays unseen by both bases, so no instruction was trained on.

Stage output `instructions/<hash>/instructions.jsonl`: one record per line, field `instruction`.
"""

from __future__ import annotations

import json
from pathlib import Path

from radio.cache import StageOutput, run_stage
from radio.inputs import input_digest

FILE_NAME = "instructions.jsonl"
FIELD = "instruction"
TEMPLATES = (
    "Explain in a few sentences what this does: {summary}",
    "Write the documentation of a Python function that does this: {summary}",
    "Describe when a programmer would need this: {summary}",
    "Summarise the behaviour described here, then give its edge cases: {summary}",
)
MIN_SUMMARY_CHARS = 12  # shorter first lines ("Constructor.", "Helper.") say nothing to answer


def instruction_texts(documents: list[str]) -> list[str]:
    """One instruction per document with a usable summary line, in document order, without duplicates."""
    seen: set[str] = set()
    out = []
    for index, doc in enumerate(documents):
        summary = " ".join(doc.strip().split("\n", 1)[0].split())
        if len(summary) < MIN_SUMMARY_CHARS or summary in seen:
            continue
        seen.add(summary)
        out.append(TEMPLATES[index % len(TEMPLATES)].format(summary=summary))
    return out


def build_instructions(corpus_dir: Path, root: Path | None = None) -> StageOutput:
    """The cached instruction file of the corpus stage at `corpus_dir` (its `heldout` split)."""
    from radio.data.corpus import load_split

    def build(out: Path) -> dict[str, int]:
        texts = instruction_texts(load_split(corpus_dir, "heldout"))
        if not texts:
            raise ValueError(f"instructions: the held-out split of {corpus_dir} has no summary line to ask about")
        with (out / FILE_NAME).open("w", encoding="utf-8") as handle:
            for text in texts:
                handle.write(json.dumps({FIELD: text}) + "\n")
        return {"instructions": len(texts)}

    config = {"templates": list(TEMPLATES), "min_summary_chars": MIN_SUMMARY_CHARS}
    return run_stage("instructions", config, build, inputs={"corpus": input_digest(corpus_dir, "corpus")}, root=root)
