"""The cached fine-tune stage: `root/finetune/<hash of config and inputs>`, built once, resumable after a crash."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from radio.cache import StageOutput, config_hash, default_cache_root, find_complete, run_stage
from radio.inputs import input_digest
from radio.train.checkpoint import EXECUTION_FIELDS
from radio.train.config import FinetuneConfig
from radio.train.finetune import FinetunePaths, finetune
from radio.train.result import CHECKPOINTS_DIR

STAGE = "finetune"


def stage_config(cfg: FinetuneConfig) -> dict[str, Any]:
    """The part of the config that shapes the fine-tuned model: what the stage hash is computed from."""
    return {k: v for k, v in cfg.to_dict().items() if k not in EXECUTION_FIELDS}


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def finetune_stage(
    cfg: FinetuneConfig,
    base_model_dir: str | Path,
    train_dir: str | Path,
    root: str | Path | None = None,
) -> StageOutput:
    """Cached fine-tune in `root/finetune/<hash of config and inputs>`: built once, resumable after a crash.

    Training runs in the stable `root/finetune/.work-<hash>` (through `finetune`, so a crashed or killed build
    resumes from its last checkpoint on the next call); the finished files are then moved into the stage
    folder and `run_stage` writes `manifest.json` last. Concurrent builders of the same hash wait on a file
    lock, and the later one finds the stage complete. For a single process (or rank): a multi-worker Ray run
    calls `finetune`.
    """
    root_path = Path(root).resolve() if root is not None else default_cache_root()
    paths = FinetunePaths.resolve(base_model_dir, train_dir, root_path)
    config = stage_config(cfg)
    inputs = {
        "base_model": input_digest(paths.base_model_dir, "base model"),
        "train_data": input_digest(paths.train_dir, "training data"),
    }
    digest = config_hash(config, inputs)
    work = root_path / STAGE / f".work-{digest}"

    def build(tmp: Path) -> Mapping[str, Any]:
        with _file_lock(root_path / STAGE / f".work-{digest}.lock"):
            if find_complete(root_path, STAGE, digest) is not None:
                return {}  # another process finished it while we waited; run_stage returns that one
            result = finetune(cfg, paths.base_model_dir, paths.train_dir, work)
            for entry in work.iterdir():
                if entry.name != CHECKPOINTS_DIR:
                    os.replace(entry, tmp / entry.name)
            shutil.rmtree(work)
        return result.counts()

    return run_stage(STAGE, config, build, inputs=inputs, root=root_path)
