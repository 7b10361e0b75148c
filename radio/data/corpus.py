"""Pre-training corpora: the embedded default (docstrings of the Python standard library) or any local text.

The default is found at run time on every machine: walk `sysconfig.get_paths()["stdlib"]` in sorted order, parse
each module with `ast`, and keep module, class and function docstrings (about 1.7 MB of English on CPython 3.11).
A local source replaces it: a `.txt` file (documents separated by blank lines), `.jsonl`, `.parquet`, or a
`datasets.save_to_disk` folder (column `text_field`).

Stage output `corpus/<hash>/` holds three `datasets` folders with one column `text`:
`a` and `b` (disjoint halves, the pre-training data of bases A and B) and `heldout` (never trained on by either
base; its passages open the prompts of self-instruct generation). Documents are deduplicated after whitespace
normalisation before splitting, so no text is in two splits.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import random
import sys
import sysconfig
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from radio.cache import StageOutput, run_stage
from radio.config import ConfigError, require, to_dict

log = logging.getLogger(__name__)

SPLITS = ("a", "b", "heldout")
# Test suites and vendored third-party code are not part of the stdlib's prose and vary between installs.
_SKIP_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"})


class EmptyCorpusError(ValueError):
    """The corpus source yields no usable documents; the message names the source."""


@dataclass(frozen=True)
class CorpusConfig:
    """Where the pre-training text comes from and how it is split into the halves of A, B and a held-out part."""

    source: str = "stdlib"  # "stdlib", or a local .txt / .jsonl / .parquet file or save_to_disk folder
    text_field: str = "text"
    min_chars: int = 40  # drop one-liners such as "Return self==value."
    max_docs: int = 0  # 0 keeps every document; tests use a small prefix of the shuffled corpus
    heldout_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        require(bool(self.source), "corpus.source", "must be 'stdlib' or a local path")
        require(self.min_chars >= 0, "corpus.min_chars", f"must be >= 0, got {self.min_chars}")
        require(self.max_docs >= 0, "corpus.max_docs", f"must be >= 0, got {self.max_docs}")
        require(
            0.0 < self.heldout_fraction < 1.0,
            "corpus.heldout_fraction",
            f"must be in (0, 1), got {self.heldout_fraction}",
        )


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)  # sorted: deterministic order
        files.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
    return files


# The nodes that carry a docstring.
_DOCUMENTED = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef


def _stdlib_modules() -> Iterator[tuple[str, ast.Module]]:
    """Source and syntax tree of every standard-library module that parses, in `_stdlib_files` order."""
    for path in _stdlib_files():
        try:
            source = path.read_text(encoding="utf-8")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escape sequences in old modules
                tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a few files are templates or use another encoding: not prose we need
        yield source, tree


def stdlib_docstrings() -> list[str]:
    """Module, class and function docstrings of the standard library, in a deterministic order."""
    docs = []
    for _, tree in _stdlib_modules():
        for node in ast.walk(tree):
            if isinstance(node, _DOCUMENTED):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    docs.append(doc)
    return docs


def _docstring_lines(tree: ast.Module) -> set[int]:
    """Line numbers (1-based) of every module, class and function docstring in `tree`."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, _DOCUMENTED) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def stdlib_code() -> list[str]:
    """The standard library's source files with their docstrings removed (code, comments, names), one per module.

    Text for a tokenizer that must reach a real model's vocabulary size (the docstrings alone give about 16,400 BPE
    entries): docstrings are cut so that no held-out passage reaches the tokenizer through the code.
    """
    files = []
    for source, tree in _stdlib_modules():
        cut = _docstring_lines(tree)
        files.append("\n".join(line for no, line in enumerate(source.splitlines(), 1) if no not in cut))
    return files


def _read_local(path: Path, text_field: str) -> list[str]:
    if not path.exists():
        raise FileNotFoundError(f"corpus.source {path}: not found")
    if path.is_dir():
        import datasets

        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if "train" not in loaded:
                raise ConfigError(f"corpus.source {path}: DatasetDict without a 'train' split ({list(loaded)})")
            loaded = loaded["train"]
        if text_field not in loaded.column_names:
            raise ConfigError(f"corpus.text_field: column {text_field!r} not in {path} ({loaded.column_names})")
        return [str(t) for t in loaded[text_field]]
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        texts = []
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                if text_field not in record:
                    raise ConfigError(f"corpus.text_field: {path}:{line_no} has no field {text_field!r}")
                texts.append(str(record[text_field]))
        return texts
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if text_field not in table.column_names:
            raise ConfigError(f"corpus.text_field: column {text_field!r} not in {path} ({table.column_names})")
        return [str(t) for t in table.column(text_field).to_pylist()]
    # Plain text: paragraphs (blank-line separated) are documents.
    return [block.strip() for block in path.read_text(encoding="utf-8").split("\n\n") if block.strip()]


def read_documents(cfg: CorpusConfig) -> list[str]:
    """All documents of the configured source, in source order, before filtering and splitting."""
    if cfg.source == "stdlib":
        return stdlib_docstrings()
    return _read_local(Path(cfg.source).expanduser(), cfg.text_field)


def source_fingerprint(cfg: CorpusConfig) -> str:
    """Hash of the source's bytes (and, for the stdlib, the Python version): the corpus stage's input hash.

    Cheaper than extracting the documents, so a warm run finds its cached corpus without parsing anything.
    """
    digest = hashlib.sha256()
    if cfg.source == "stdlib":
        digest.update(sys.version.encode())
        root = Path(sysconfig.get_paths()["stdlib"])
        files = _stdlib_files()
    else:
        root = Path(cfg.source).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"corpus.source {root}: not found")
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        root = root if root.is_dir() else root.parent
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _normalise(text: str) -> str:
    return " ".join(text.split()).lower()


def split_documents(docs: list[str], cfg: CorpusConfig) -> dict[str, list[str]]:
    """Filter, deduplicate and shuffle `docs`, then split into `heldout` and the disjoint halves `a` and `b`."""
    seen: set[str] = set()
    unique = []
    for doc in docs:
        key = _normalise(doc)
        if len(doc) >= cfg.min_chars and key not in seen:
            seen.add(key)
            unique.append(doc.strip())
    # A seeded shuffle so the halves have the same distribution (the stdlib order groups topics by module).
    random.Random(cfg.seed).shuffle(unique)
    if cfg.max_docs:
        unique = unique[: cfg.max_docs]
    n_heldout = max(1, round(len(unique) * cfg.heldout_fraction))
    rest = unique[n_heldout:]
    if len(rest) < 2:
        raise EmptyCorpusError(
            f"corpus.source {cfg.source}: only {len(unique)} usable documents (min_chars={cfg.min_chars})"
        )
    half = len(rest) // 2
    return {"heldout": unique[:n_heldout], "a": rest[:half], "b": rest[half : 2 * half]}


def build_corpus(cfg: CorpusConfig, root: Path | None = None) -> StageOutput:
    """The cached corpus stage: `a`, `b` and `heldout` text datasets under `corpus/<hash>/`."""
    import datasets

    def build(out: Path) -> dict[str, int]:
        splits = split_documents(read_documents(cfg), cfg)
        counts = {}
        for name in SPLITS:
            datasets.Dataset.from_dict({"text": splits[name]}).save_to_disk(str(out / name))
            counts[f"{name}_docs"] = len(splits[name])
            counts[f"{name}_chars"] = sum(map(len, splits[name]))
        log.info("corpus: %s", counts)
        return counts

    return run_stage("corpus", to_dict(cfg), build, inputs={"source": source_fingerprint(cfg)}, root=root)


def load_split(corpus_dir: str | Path, split: str) -> list[str]:
    """The texts of one split (`a`, `b` or `heldout`) of a corpus stage folder."""
    import datasets

    if split not in SPLITS:
        raise ConfigError(f"split: {split!r} is not one of {list(SPLITS)}")
    path = Path(corpus_dir) / split
    if not path.is_dir():
        raise FileNotFoundError(f"corpus {corpus_dir}: split folder {split!r} not found")
    return list(datasets.load_from_disk(str(path))["text"])
