"""Stage cache: every stage output lives in its own folder named by a hash of its config and its inputs' hashes.

A folder is complete only when its `manifest.json` exists; the manifest is written last, after the outputs were
built in a temporary sibling folder and renamed into place, so an interrupted stage never looks complete and is
simply redone. This module knows nothing about watermarks: it serves the radio stages and any other sweep.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_ENV_VAR = "RADIO_CACHE"
MANIFEST = "manifest.json"
_TRACKED_PACKAGES = ("radio", "torch", "transformers", "tokenizers", "datasets", "deepspeed", "peft")


def default_cache_root() -> Path:
    """The cache root: `$RADIO_CACHE` if set, else `~/.cache/radio`."""
    return Path(os.environ.get(CACHE_ENV_VAR, Path.home() / ".cache" / "radio")).expanduser().resolve()


def config_hash(config: Mapping[str, Any], inputs: Mapping[str, str] | None = None) -> str:
    """Stable 16-hex-char hash of a JSON-able config and the hashes of the stage's inputs."""
    payload = json.dumps({"config": config, "inputs": dict(inputs or {})}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape stage outputs, recorded in each manifest."""
    versions = {}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class StageOutput:
    """A completed stage folder: its path, its hash, and the manifest that marks it complete."""

    path: Path
    hash: str
    manifest: dict[str, Any]
    cached: bool


def find_complete(root: Path, stage: str, digest: str) -> StageOutput | None:
    """Return the completed output of `stage` with hash `digest`, or None when absent or incomplete."""
    path = root / stage / digest
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    return StageOutput(path=path, hash=digest, manifest=manifest, cached=True)


def run_stage(
    stage: str,
    config: Mapping[str, Any],
    build: Callable[[Path], Mapping[str, Any] | None],
    inputs: Mapping[str, str] | None = None,
    root: Path | None = None,
    key_fingerprint: str | None = None,
) -> StageOutput:
    """Return the cached output of `stage` for (config, inputs), building it with `build(tmp_dir)` if needed.

    `build` writes its outputs into the folder it is given and may return counts for the manifest. The folder is
    renamed into place and the manifest written last; on any exception the temporary folder is removed.
    """
    root = (root or default_cache_root()).resolve()
    digest = config_hash(config, inputs)
    found = find_complete(root, stage, digest)
    if found is not None:
        log.info("cache hit: %s/%s", stage, digest)
        return found
    final = root / stage / digest
    tmp = root / stage / f".tmp-{digest}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    log.info("cache miss: building %s/%s", stage, digest)
    try:
        counts = build(tmp) or {}
        manifest = {
            "stage": stage,
            "hash": digest,
            "config": dict(config),
            "inputs": dict(inputs or {}),
            "key_fingerprint": key_fingerprint,
            "counts": dict(counts),
            "packages": package_versions(),
            "wall_time_s": round(time.perf_counter() - start, 3),
        }
        if final.exists():  # an incomplete earlier attempt, or a concurrent builder that lost the race
            if find_complete(root, stage, digest) is not None:
                shutil.rmtree(tmp, ignore_errors=True)
                return find_complete(root, stage, digest)  # type: ignore[return-value]
            shutil.rmtree(final)
        os.replace(tmp, final)
        tmp_manifest = final / f".{MANIFEST}.tmp"
        tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        os.replace(tmp_manifest, final / MANIFEST)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StageOutput(path=final, hash=digest, manifest=manifest, cached=False)
