"""Reading Alice's text for a test: one split of a mix folder (`datasets.save_to_disk`), or a JSONL file of answers.

`load_records` reads a split's `prompt_ids` / `answer_ids` (and `answer`, `member` and the public watermark columns
when present); `read_jsonl_records` reads answers produced elsewhere (token ids, or text with a tokenizer). Errors
name the folder, file, line or field; they are ValueError / FileNotFoundError, which the CLI prints as one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TextRecords:
    """Token ids (and texts) of one split of Alice's data, plus the public watermark columns found there."""

    prompts: list[list[int]]
    answers: list[list[int]]
    texts: list[str] | None
    member: list[bool] | None
    scheme: set[str]
    k: set[int]
    key_fingerprints: set[str]


@dataclass(frozen=True)
class JsonlRecords:
    """Token ids of the answers (and their prompts, when the file has a prompt field) read from a JSONL file."""

    sequences: list[list[int]]
    prompts: list[list[int]] | None


def load_dataset_folder(folder: Path) -> Any:
    """`datasets.load_from_disk(folder)`, with an error naming the folder when it cannot be read."""
    import datasets

    try:
        return datasets.load_from_disk(str(folder))
    except Exception as err:  # datasets raises several types for unreadable or odd folders
        raise ValueError(f"{folder}: not a readable datasets folder ({type(err).__name__}: {err})") from err


def load_records(folder: str | Path, max_texts: int | None = None) -> TextRecords:
    """Read a `datasets.save_to_disk` split (columns `prompt_ids`, `answer_ids`; `answer`, `member` if present)."""
    import datasets

    folder = Path(folder).expanduser()
    if not (folder / "dataset_info.json").is_file() and not (folder / "state.json").is_file():
        raise FileNotFoundError(f"{folder}: not found, or not a datasets.save_to_disk folder")
    data = load_dataset_folder(folder)
    if isinstance(data, datasets.DatasetDict):
        raise ValueError(f"{folder}: a DatasetDict; point to one split (e.g. <mix>/heldout)")
    missing = [c for c in ("prompt_ids", "answer_ids") if c not in data.column_names]
    if missing:
        raise ValueError(f"{folder}: missing column(s) {missing}; has {data.column_names}")
    if max_texts is not None:
        data = data.select(range(min(max_texts, len(data))))
    if len(data) == 0:
        raise ValueError(f"{folder}: the dataset is empty")
    columns = data.column_names

    def values(name: str) -> list[Any] | None:
        return list(data[name]) if name in columns else None

    return TextRecords(
        prompts=[list(p) for p in data["prompt_ids"]],
        answers=[list(a) for a in data["answer_ids"]],
        texts=values("answer"),
        member=values("member"),
        scheme=set(values("scheme") or []),
        k=set(values("k") or []),
        key_fingerprints=set(values("key_fingerprint") or []) - {""},
    )


def read_jsonl_records(
    path: Path, field: str, prompt_field: str | None, tokenizer_path: Path | None, vocab_size: int
) -> JsonlRecords:
    """Read `field` (token ids, or text with a tokenizer) and optionally `prompt_field` from every JSONL line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: input file not found")
    tokenizer = None
    if tokenizer_path is not None:
        from transformers import AutoTokenizer

        if not tokenizer_path.exists():
            raise FileNotFoundError(f"--tokenizer {tokenizer_path}: not found")
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path), local_files_only=True)

    def to_ids(value: object, where: str) -> list[int]:
        if isinstance(value, str):
            if tokenizer is None:
                raise ValueError(f"{where}: is text; pass --tokenizer PATH to tokenize it")
            return list(tokenizer(value, add_special_tokens=False)["input_ids"])
        if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
            raise ValueError(f"{where}: expected a list of integer token ids or a string")
        bad = [t for t in value if t < 0 or t >= vocab_size]
        if bad:
            raise ValueError(f"{where}: token id {bad[0]} outside [0, vocab_size={vocab_size})")
        return value

    sequences: list[list[int]] = []
    prompts: list[list[int]] = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: malformed JSON ({err.msg})") from err
            if not isinstance(record, dict) or field not in record:
                raise ValueError(f"{path}:{number}: missing field {field!r}")
            sequences.append(to_ids(record[field], f"{path}:{number}: field {field!r}"))
            if prompt_field is not None:
                if prompt_field not in record:
                    raise ValueError(f"{path}:{number}: missing prompt field {prompt_field!r}")
                prompts.append(to_ids(record[prompt_field], f"{path}:{number}: field {prompt_field!r}"))
    if not sequences:
        raise ValueError(f"{path}: empty input (no records)")
    return JsonlRecords(sequences, prompts if prompt_field is not None else None)
