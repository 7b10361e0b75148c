"""The output folder of a fine-tune: which run it belongs to, its Trainer checkpoints, and resuming from them.

A folder holds `finetune_run.json` (the config and the input digests), `checkpoints/checkpoint-<step>` while it
trains, and the final model plus `train_metrics.json` (written last) once done. A rerun on the same folder resumes
from the highest complete checkpoint; inside Ray Train, from the checkpoint Ray holds when the folder has none.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from radio.inputs import input_digest
from radio.train.config import FinetuneConfig
from radio.train.result import CHECKPOINTS_DIR, METRICS_FILE, RUN_FILE, FinetuneError, FinetuneResult

log = logging.getLogger(__name__)

# Fields that change how a run is executed or logged, not the model it produces: left out of the stage hash.
EXECUTION_FIELDS = ("log_every_steps", "save_every_steps", "keep_checkpoints")


def run_identity(cfg: FinetuneConfig, base_model_dir: Path, train_dir: Path) -> dict[str, Any]:
    """What a folder's checkpoints belong to: the config, the input paths and their digests."""
    return {
        "config": cfg.to_dict(),
        "base_model_dir": str(base_model_dir),
        "train_dir": str(train_dir),
        "inputs": {
            "base_model": input_digest(base_model_dir, "base model"),
            "train_data": input_digest(train_dir, "training data"),
        },
    }


def same_run(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two run identities train the same model (execution settings and paths aside)."""

    def shaping(run: Mapping[str, Any]) -> dict[str, Any]:
        config = {k: v for k, v in run["config"].items() if k not in EXECUTION_FIELDS}
        return {"config": config, "inputs": run["inputs"]}

    return shaping(a) == shaping(b)


def completed_result(out_dir: Path, identity: dict[str, Any]) -> FinetuneResult | None:
    """The result of a completed `out_dir` of this run; None to train; FinetuneError for another run's folder."""
    if (out_dir / METRICS_FILE).is_file():
        previous = json.loads((out_dir / METRICS_FILE).read_text())
        if not same_run(previous["run"], identity):
            raise FinetuneError(f"{out_dir}: holds a completed fine-tune of another config or input")
        log.info("fine-tune already complete in %s", out_dir)
        return FinetuneResult.load(out_dir)
    if (out_dir / RUN_FILE).is_file():
        previous = json.loads((out_dir / RUN_FILE).read_text())
        if not same_run(previous, identity):
            raise FinetuneError(f"{out_dir}: holds checkpoints of another config or input; use a new folder")
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        raise FinetuneError(f"{out_dir}: exists and is not a fine-tune folder; use an empty or new folder")
    return None


def last_checkpoint(ckpt_root: Path, clean: bool = False) -> Path | None:
    """The highest-step complete Trainer checkpoint (trainer_state.json is written last) in `ckpt_root`.

    With `clean`, incomplete checkpoint folders (a save cut short) are deleted."""
    if not ckpt_root.is_dir():
        return None
    found = []
    for entry in ckpt_root.iterdir():
        if entry.is_dir() and entry.name.startswith("checkpoint-") and entry.name[11:].isdigit():
            if (entry / "trainer_state.json").is_file():
                found.append((int(entry.name[11:]), entry))
            elif clean:
                log.warning("removing incomplete checkpoint %s", entry)
                shutil.rmtree(entry, ignore_errors=True)
    return max(found)[1] if found else None


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def clean_incomplete_outputs(out_dir: Path) -> None:
    """Remove final-model files of an earlier unfinished attempt; keep checkpoints and the run file."""
    for entry in out_dir.iterdir():
        if entry.name in (CHECKPOINTS_DIR, RUN_FILE):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def in_ray_train_worker() -> bool:
    """True inside a Ray Train worker's train loop; never imports Ray when the process has not."""
    if "ray" not in sys.modules:
        return False
    try:
        import ray.train

        ray.train.get_context()
    except Exception:  # not a Ray Train worker (or an old/odd Ray): no reporting
        return False
    return True


def ray_restore_checkpoint(ckpt_root: Path) -> Path | None:
    """Copy the latest checkpoint that Ray Train holds for this run into `ckpt_root`, if any."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        state = json.loads((Path(folder) / "trainer_state.json").read_text())
        target = ckpt_root / f"checkpoint-{int(state['global_step'])}"
        if not target.exists():
            shutil.copytree(folder, target)
    log.info("restored Ray Train checkpoint into %s", target)
    return target
