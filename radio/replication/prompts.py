"""Prompt sets of the word-level audit: the paper's five kinds plus controls, from templates or a prompts file.

Kinds, named exactly: `keywords` (the keyword phrase alone), `short-related` (the keywords and two of the
cluster's top words), `long-related` (the keywords and eight top words), `unrelated-with-keywords` (an unrelated
scene with the keywords), `cooccurring-without-keywords` (a long caption of the cluster's top words, keyword
words removed), and controls `control-<name>` (prompts that should never replicate the cluster).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from radio.replication.clustering import caption_words

WORD_KINDS = (
    "keywords",
    "short-related",
    "long-related",
    "unrelated-with-keywords",
    "cooccurring-without-keywords",
)
CONTROL_PREFIX = "control-"
_CONTROL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

DEFAULT_UNRELATED = "a red bicycle leaning against a brick wall on a rainy city street"
DEFAULT_CONTROLS = {"unrelated": DEFAULT_UNRELATED}


def is_valid_kind(kind: str) -> bool:
    """Whether `kind` is one of the five kinds or `control-<name>` (name: lower-case letters, digits, - and _)."""
    if kind in WORD_KINDS:
        return True
    return kind.startswith(CONTROL_PREFIX) and bool(_CONTROL_NAME.match(kind[len(CONTROL_PREFIX) :]))


def check_kind(kind: str) -> str:
    """`kind` itself, or a ValueError listing the valid kinds."""
    if not isinstance(kind, str) or not is_valid_kind(kind):
        raise ValueError(f"unknown prompt kind {kind!r}; expected one of {', '.join(WORD_KINDS)} or control-<name>")
    return kind


@dataclass(frozen=True)
class Prompt:
    """One prompt of a given kind."""

    kind: str
    prompt: str

    def __post_init__(self) -> None:
        check_kind(self.kind)
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError(f"prompt of kind {self.kind!r}: empty text")


def template_prompts(
    keywords: str,
    top_words: Sequence[str],
    unrelated: str = DEFAULT_UNRELATED,
    controls: Mapping[str, str] | None = None,
    short_words: int = 2,
    long_words: int = 8,
) -> list[Prompt]:
    """One prompt per kind built from the keyword phrase and the cluster's top words (most frequent first), then
    one per control (default: the unrelated scene alone). Top words that belong to the keyword phrase are skipped,
    so that `cooccurring-without-keywords` never holds a keyword word."""
    keyword_words = caption_words(keywords)
    words = [w for w in top_words if w.lower() not in keyword_words]
    if not words:
        raise ValueError("template_prompts: no top word outside the keyword phrase")
    prompts = [
        Prompt("keywords", keywords),
        Prompt("short-related", f"{' '.join(words[:short_words])} {keywords}"),
        Prompt("long-related", f"{' '.join(words[:long_words])} {keywords}"),
        Prompt("unrelated-with-keywords", f"{unrelated}, {keywords}"),
        Prompt("cooccurring-without-keywords", " ".join(words[:long_words])),
    ]
    for name, text in (DEFAULT_CONTROLS if controls is None else controls).items():
        prompts.append(Prompt(f"{CONTROL_PREFIX}{name}", text))
    return prompts


_FIELDS = {"kind", "prompt"}


def _prompt_from_record(record: object, where: str) -> Prompt:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a mapping with 'kind' and 'prompt'")
    unknown = set(record) - _FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    missing = _FIELDS - set(record)
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(sorted(missing))}")
    kind = record["kind"]
    if not isinstance(kind, str) or not is_valid_kind(kind):
        raise ValueError(f"{where}: unknown kind {kind!r}; expected one of {', '.join(WORD_KINDS)} or control-<name>")
    try:
        return Prompt(kind, record["prompt"])
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from err


def read_prompts(path: str | Path) -> list[Prompt]:
    """Prompts from a JSONL file (one {"kind", "prompt"} object a line) or a YAML file (a list of such mappings,
    or a mapping with key `prompts` holding one). Unknown kinds and fields are rejected, naming the line (JSONL)
    or the item (YAML)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: prompts file not found")
    prompts: list[Prompt] = []
    if file.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(file.read_text())
        if isinstance(data, dict):
            if set(data) != {"prompts"}:
                raise ValueError(f"{file}: expected a list of prompts or a mapping with the single key 'prompts'")
            data = data["prompts"]
        if not isinstance(data, list):
            raise ValueError(f"{file}: expected a list of prompts")
        prompts = [_prompt_from_record(item, f"{file}: item {i}") for i, item in enumerate(data, start=1)]
    else:
        for number, line in enumerate(file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{file}:{number}: malformed JSON ({err.msg})") from err
            prompts.append(_prompt_from_record(record, f"{file}:{number}"))
    if not prompts:
        raise ValueError(f"{file}: no prompts")
    return prompts


def write_prompts(path: str | Path, prompts: Iterable[Prompt]) -> Path:
    """Write prompts as JSONL (readable by `read_prompts`); returns the path."""
    file = Path(path)
    file.write_text("".join(json.dumps({"kind": p.kind, "prompt": p.prompt}) + "\n" for p in prompts))
    return file
