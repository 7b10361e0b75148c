"""radio's stage cache: the stage store (package `stagestore`) with radio's defaults.

Every stage output lives in its own folder under one cache root (`$RADIO_CACHE`, default `~/.cache/radio`), named
by a hash of its config and its inputs' hashes, and is complete only when its `manifest.json` exists (see
`stagestore`, which also locks concurrent builders). radio adds to each manifest the key
fingerprint of the stage (never the key) and the versions of the packages that shape its outputs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from stagestore import MANIFEST, StageOutput, config_hash, find_complete
from stagestore import run_stage as _run_stage

CACHE_ENV_VAR = "RADIO_CACHE"
_TRACKED_PACKAGES = ("radio", "torch", "transformers", "tokenizers", "datasets", "deepspeed", "peft", "diffusers")

__all__ = [
    "CACHE_ENV_VAR",
    "MANIFEST",
    "StageOutput",
    "config_hash",
    "default_cache_root",
    "find_complete",
    "package_versions",
    "run_stage",
]


def default_cache_root() -> Path:
    """The cache root: `$RADIO_CACHE` if set, else `~/.cache/radio`."""
    return Path(os.environ.get(CACHE_ENV_VAR, Path.home() / ".cache" / "radio")).expanduser().resolve()


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape stage outputs, recorded in each manifest."""
    versions = {}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def run_stage(
    stage: str,
    config: Mapping[str, Any],
    build: Callable[[Path], Mapping[str, Any] | None],
    inputs: Mapping[str, str] | None = None,
    root: Path | None = None,
    key_fingerprint: str | None = None,
) -> StageOutput:
    """Return the cached output of `stage` for (config, inputs) under radio's cache root, building it if needed."""
    extra = {"key_fingerprint": key_fingerprint, "packages": package_versions()}
    return _run_stage(stage, config, build, root or default_cache_root(), inputs=inputs, manifest=extra)
