"""Hashes of stage inputs given as folders or files, so that caches depend on what they were built from."""

from __future__ import annotations

import json
from pathlib import Path

from radio.cache import MANIFEST, config_hash


def input_digest(path: str | Path, what: str) -> str:
    """Hash identifying the input at `path`: a stage folder's own hash, else a hash of its file listing.

    Stage folders carry their hash in `manifest.json`. Any other local folder or file (a real checkpoint, a prompt
    file) is identified by its absolute path, file names, sizes and modification times: cheap for a 7B checkpoint,
    and changed by any rewrite. Raises FileNotFoundError naming `what` when `path` does not exist.
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"{what} {path}: not found")
    manifest = path / MANIFEST
    if manifest.is_file():
        return str(json.loads(manifest.read_text())["hash"])
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    listing = [
        [str(p.relative_to(path) if path.is_dir() else p.name), p.stat().st_size, p.stat().st_mtime_ns] for p in files
    ]
    return config_hash({"path": str(path), "files": listing})
