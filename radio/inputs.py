"""`input_digest`: the one identity of a stage input (a folder or file), so that caches depend on what they read.

Every stage (generate, mix, finetune, ...) hashes its inputs through this function, so one input has one identity
wherever it is used.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from radio.cache import MANIFEST

_WHOLE_FILE_BYTES = 64 << 20  # files up to this size are hashed whole
_EDGE_BYTES = 4 << 20  # of larger files (checkpoint shards), the first and last 4 MiB


def input_digest(path: str | Path, what: str = "input") -> str:
    """Hash identifying the input at `path`: a stage folder's own hash, else a hash of its files' contents.

    Stage folders carry their hash in `manifest.json`. Any other local folder or file (a real checkpoint, a prompt
    file, a split inside a stage folder) is identified by its relative file names, sizes and contents (for files
    over 64 MiB the first and last 4 MiB): the same data copied to another path or node keeps its identity, and a
    rewrite changes it. Hidden entries (work and staging folders) are skipped. Raises FileNotFoundError naming
    `what` when `path` does not exist.
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"{what} {path}: not found")
    manifest = path / MANIFEST
    if manifest.is_file():
        recorded = json.loads(manifest.read_text()).get("hash")
        if recorded:
            return str(recorded)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        rel = file.relative_to(path).as_posix() if file != path else file.name
        if any(part.startswith(".") for part in Path(rel).parts):
            continue
        size = file.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        with file.open("rb") as handle:
            if size <= _WHOLE_FILE_BYTES:
                digest.update(handle.read())
            else:
                digest.update(handle.read(_EDGE_BYTES))
                handle.seek(size - _EDGE_BYTES)
                digest.update(handle.read())
    return "files:" + digest.hexdigest()[:16]
