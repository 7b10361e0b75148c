"""The stage store: every stage output lives in its own folder named by a hash of its config and its inputs' hashes.

A folder is complete only when its `manifest.json` exists; the manifest is written last, after the outputs were
built in a temporary sibling folder and renamed into place, so an interrupted build never looks complete and is
simply redone. Builders of the same folder (two sweeps started at once on one cache, on one machine or on the
nodes of a shared file system) take a lock file first: one builds, the others wait and find it complete.
Generic: the caller adds what its manifests must say (a key fingerprint, package versions) as `manifest` data.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# A long build reports how far it is by appending lines to the file this variable names (set by whoever runs the
# build, e.g. the sweep engine, which relays the newest line to its live view). In the environment, so that it
# reaches the processes a build spawns and no stage's signature or hashed config changes.
PROGRESS_ENV = "SWEEP_STAGE_PROGRESS"


def progress_file() -> Path | None:
    """Inside a stage build whose runner asked for progress: the file to append progress lines to, else None."""
    value = os.environ.get(PROGRESS_ENV)
    return Path(value) if value else None


def config_hash(config: Mapping[str, Any], inputs: Mapping[str, str] | None = None) -> str:
    """Stable 16-hex-char hash of a JSON-able config and the hashes of the stage's inputs."""
    payload = json.dumps({"config": config, "inputs": dict(inputs or {})}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StageOutput:
    """A completed stage folder: its path, its hash, and the manifest that marks it complete."""

    path: Path
    hash: str
    manifest: dict[str, Any]
    cached: bool


def find_complete(root: Path, stage: str, digest: str) -> StageOutput | None:
    """Return the completed output of `stage` with hash `digest`, or None when absent or incomplete."""
    path = Path(root) / stage / digest
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    return StageOutput(path=path, hash=digest, manifest=manifest, cached=True)


@contextlib.contextmanager
def build_lock(root: Path, stage: str, digest: str) -> Iterator[None]:
    """Hold the build lock of one stage folder (POSIX record lock: also honoured across NFS clients)."""
    folder = Path(root) / stage
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{digest}.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            log.info("waiting for another builder of %s/%s", stage, digest)
            fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def run_stage(
    stage: str,
    config: Mapping[str, Any],
    build: Callable[[Path], Mapping[str, Any] | None],
    root: Path,
    inputs: Mapping[str, str] | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> StageOutput:
    """Return the cached output of `stage` for (config, inputs), building it with `build(tmp_dir)` if needed.

    `build` writes its outputs into the folder it is given and may return counts for the manifest; `manifest`
    adds the caller's own entries. The folder is renamed into place and the manifest written last; on any
    exception the temporary folder is removed and nothing is marked complete.
    """
    root = Path(root).resolve()
    digest = config_hash(config, inputs)
    found = find_complete(root, stage, digest)
    if found is not None:
        log.info("cache hit: %s/%s", stage, digest)
        return found
    with build_lock(root, stage, digest):
        found = find_complete(root, stage, digest)  # built by the holder we waited for
        if found is not None:
            return found
        final = root / stage / digest
        tmp = root / stage / f".tmp-{digest}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        start = time.perf_counter()
        log.info("cache miss: building %s/%s", stage, digest)
        try:
            counts = build(tmp) or {}
            record = {
                **dict(manifest or {}),
                "stage": stage,
                "hash": digest,
                "config": dict(config),
                "inputs": dict(inputs or {}),
                "counts": dict(counts),
                "wall_time_s": round(time.perf_counter() - start, 3),
            }
            if final.exists():  # an incomplete earlier attempt
                shutil.rmtree(final)
            os.replace(tmp, final)
            tmp_manifest = final / f".{MANIFEST}.tmp"
            tmp_manifest.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
            os.replace(tmp_manifest, final / MANIFEST)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return StageOutput(path=final, hash=digest, manifest=record, cached=False)
