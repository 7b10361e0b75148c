"""A LAION-style metadata table: one row per training image with its caption and local path.

Columns: `caption` (str), `image_path` (relative to the table's folder, or absolute), optional `embedding`
(a list of floats per row, precomputed by any image embedder), and any other columns, kept as they are.
Read from Parquet, JSONL, or a `datasets.save_to_disk` folder (for large corpora).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# File names looked up, in order, when `load_corpus` is given a folder that is not a saved `datasets` folder.
TABLE_NAMES = ("metadata.parquet", "metadata.jsonl")
_MISSING_SHOWN = 5


@dataclass(frozen=True)
class Corpus:
    """The metadata table (`frame`, index 0..n-1) and the folder that relative image paths start from."""

    frame: pd.DataFrame
    root: Path
    source: Path

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def captions(self) -> list[str]:
        """Captions, one per row."""
        return self.frame["caption"].tolist()

    @property
    def image_paths(self) -> list[Path]:
        """Absolute image paths, one per row."""
        return [_resolve(self.root, p) for p in self.frame["image_path"]]

    @property
    def extra_columns(self) -> list[str]:
        """Columns other than `caption`, `image_path` and `embedding`."""
        return [c for c in self.frame.columns if c not in ("caption", "image_path", "embedding")]

    @property
    def has_embeddings(self) -> bool:
        """Whether the table carries a precomputed `embedding` column."""
        return "embedding" in self.frame.columns

    def embeddings(self, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """The precomputed embeddings as float32 (n, d), L2-normalised; a ValueError if the column is absent."""
        if not self.has_embeddings:
            raise ValueError(f"{self.source}: no 'embedding' column")
        values = self.frame["embedding"] if indices is None else self.frame["embedding"].iloc[np.asarray(indices)]
        matrix = np.stack([np.asarray(v, dtype=np.float32) for v in values])
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.maximum(norms, 1e-12)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Corpus:
        """The rows at `indices`, renumbered 0..k-1 (their original row numbers in column `source_index`)."""
        frame = self.frame.iloc[np.asarray(indices, dtype=np.int64)].copy()
        if "source_index" not in frame.columns:
            frame["source_index"] = frame.index.to_numpy()
        return Corpus(frame=frame.reset_index(drop=True), root=self.root, source=self.source)

    def missing_images(self, indices: Sequence[int] | np.ndarray | None = None) -> list[Path]:
        """Image paths (of `indices`, default all) that are not files."""
        paths = self.image_paths
        chosen = range(len(paths)) if indices is None else np.asarray(indices)
        return [paths[i] for i in chosen if not paths[i].is_file()]

    def load_images(self, indices: Sequence[int] | np.ndarray | None = None, size: int = 32) -> np.ndarray:
        """Images at `indices` (default all) as uint8 (n, size, size, 3): RGB, resized with bicubic filtering
        when their size differs."""
        from PIL import Image

        chosen = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        missing = self.missing_images(chosen)
        if missing:
            raise FileNotFoundError(_missing_message(self.source, missing))
        paths = self.image_paths
        out = np.empty((len(chosen), size, size, 3), dtype=np.uint8)
        for row, index in enumerate(chosen):
            with Image.open(paths[index]) as image:
                rgb = image.convert("RGB")
                if rgb.size != (size, size):
                    rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
                out[row] = np.asarray(rgb)
        return out


def _resolve(root: Path, path: object) -> Path:
    candidate = Path(str(path))
    return candidate if candidate.is_absolute() else root / candidate


def _missing_message(source: Path, missing: list[Path]) -> str:
    shown = ", ".join(str(p) for p in missing[:_MISSING_SHOWN])
    more = f" and {len(missing) - _MISSING_SHOWN} more" if len(missing) > _MISSING_SHOWN else ""
    return f"{source}: {len(missing)} image file(s) missing: {shown}{more}"


def _read_table(path: Path) -> tuple[pd.DataFrame, Path, Path]:
    """(frame, root for relative paths, the file or folder read)."""
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
            from datasets import load_from_disk

            dataset = load_from_disk(str(path))
            if hasattr(dataset, "keys"):  # a DatasetDict: the audit reads one split
                raise ValueError(f"{path}: a DatasetDict with splits {list(dataset.keys())}; pass one split's folder")
            return dataset.to_pandas(), path, path
        for name in TABLE_NAMES:
            if (path / name).is_file():
                return _read_table(path / name)
        raise FileNotFoundError(f"{path}: no metadata table ({' or '.join(TABLE_NAMES)}, or a datasets folder)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metadata table not found")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix in (".jsonl", ".json"):
        try:
            frame = pd.read_json(path, lines=True)
        except ValueError as err:
            raise ValueError(f"{path}: not valid JSON lines ({err})") from err
    else:
        raise ValueError(f"{path}: unknown table format {suffix!r} (expected .parquet or .jsonl)")
    return frame, path.parent, path


def load_corpus(path: str | Path, check_images: bool = True) -> Corpus:
    """Read a metadata table (file, folder holding `metadata.parquet` / `metadata.jsonl`, or a `datasets` folder).

    Raises FileNotFoundError for a missing table or (with `check_images`) missing image files, naming the first
    few; ValueError for an absent `caption` / `image_path` column, non-string captions or an empty table.
    """
    frame, root, source = _read_table(Path(path))
    for column in ("caption", "image_path"):
        if column not in frame.columns:
            raise ValueError(f"{source}: column {column!r} absent (columns: {', '.join(map(str, frame.columns))})")
    if len(frame) == 0:
        raise ValueError(f"{source}: empty corpus (no rows)")
    bad = [i for i, c in enumerate(frame["caption"]) if not isinstance(c, str)]
    if bad:
        raise ValueError(f"{source}: column 'caption' holds non-text values (first at row {bad[0]})")
    corpus = Corpus(frame=frame.reset_index(drop=True), root=root, source=source)
    if check_images:
        missing = corpus.missing_images()
        if missing:
            raise FileNotFoundError(_missing_message(source, missing))
    return corpus
