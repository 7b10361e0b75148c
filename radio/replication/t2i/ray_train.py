"""Run `train_tiny_t2i` in a Ray Train V2 worker; Ray is imported only here, and only when used.

The worker reads its training set from a folder (`save_training_data`: captions.json + images.npy) and writes
checkpoints into a stable `out_dir`. Each checkpoint step is reported with `ray.train.report(..., checkpoint=...)`
carrying the resumable state; a restarted worker whose `out_dir` lost that state (another node, a wiped disk)
restores it from `ray.train.get_checkpoint()` and continues from there.

Inside a Ray Tune trial (Ray Train V2: Tune runs a plain function per trial) call `train_tiny_t2i_on_ray` from the
trial function; on CPU it uses one worker (`num_workers=1, use_gpu=False`).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radio.replication.t2i.config import TinyT2IConfig
from radio.replication.t2i.progress import TrainingProgress
from radio.replication.t2i.train import RESULT_FILE, RESUME_DIR, STATE_FILE, train_tiny_t2i

log = logging.getLogger(__name__)

CAPTIONS_FILE, IMAGES_FILE = "captions.json", "images.npy"


def save_training_data(folder: str | Path, captions: Sequence[str], images: np.ndarray) -> Path:
    """Write a training set folder for the worker: captions.json (a list) and images.npy (uint8 (n, H, W, 3))."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CAPTIONS_FILE).write_text(json.dumps(list(captions)))
    np.save(folder / IMAGES_FILE, images)
    return folder


def load_training_data(folder: str | Path) -> tuple[list[str], np.ndarray]:
    """Read a folder written by `save_training_data`; FileNotFoundError names the missing file."""
    folder = Path(folder)
    for name in (CAPTIONS_FILE, IMAGES_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: training data file not found")
    return json.loads((folder / CAPTIONS_FILE).read_text()), np.load(folder / IMAGES_FILE)


def _restore_from_ray(out_dir: Path) -> None:
    """Copy Ray Train's latest reported state into `out_dir/resume` when it is ahead of what `out_dir` holds."""
    import ray.train
    import torch

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return
    local = out_dir / RESUME_DIR / STATE_FILE
    local_step = torch.load(local, map_location="cpu", weights_only=False)["step"] if local.is_file() else -1
    with checkpoint.as_directory() as folder:
        held = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)["step"]
        if held > local_step:
            if (out_dir / RESUME_DIR).exists():
                shutil.rmtree(out_dir / RESUME_DIR)
            shutil.copytree(folder, out_dir / RESUME_DIR)


def resumed_step(out_dir: str | Path) -> int:
    """The step `out_dir`'s resume state holds (0 when there is none): where a restarted training continues."""
    import torch

    state = Path(out_dir) / RESUME_DIR / STATE_FILE
    return int(torch.load(state, map_location="cpu", weights_only=False)["step"]) if state.is_file() else 0


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """The per-worker function. `config`: `t2i` (TinyT2IConfig dict), `data_dir`, `out_dir`, `seed`,
    `checkpoint_steps`, and optionally `device`, `stop_after_steps` (an interruption on purpose, for tests) and
    `progress` (a picklable callable that receives each progress line, e.g. to the sweep's live view)."""
    import ray.train

    cfg = TinyT2IConfig.from_dict(config["t2i"])
    out_dir = Path(config["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    rank = ray.train.get_context().get_world_rank()
    if rank == 0:
        _restore_from_ray(out_dir)
    captions, images = load_training_data(config["data_dir"])
    meter = TrainingProgress(cfg.train_steps, resumed_step(out_dir))
    sink: Callable[[str], None] | None = config.get("progress")

    def progress(step: int, loss: float) -> None:
        metrics, line = meter.update(step, loss)
        if rank == 0:
            log.info(line)
            if sink is not None:
                sink(line)
        ray.train.report(metrics)

    def on_checkpoint(step: int, folder: Path, resume: Path, loss: float) -> None:
        # Ray persists the reported folder before report returns, so the next save may replace `resume`.
        ckpt = ray.train.Checkpoint.from_directory(str(resume)) if rank == 0 else None
        ray.train.report({"step": step, "loss": loss, "checkpoint_dir": str(folder)}, checkpoint=ckpt)

    train_tiny_t2i(
        captions,
        images,
        out_dir,
        cfg,
        seed=int(config["seed"]),
        checkpoint_steps=list(config["checkpoint_steps"]),
        progress=progress,
        on_checkpoint=on_checkpoint,
        device=config.get("device", "cpu"),
        stop_after_steps=config.get("stop_after_steps"),
    )


def train_tiny_t2i_on_ray(
    data_dir: str | Path,
    out_dir: str | Path,
    config: TinyT2IConfig,
    seed: int,
    checkpoint_steps: Sequence[int],
    *,
    use_gpu: bool = False,
    cpus_per_worker: float = 1.0,
    storage_path: str | Path | None = None,
    name: str | None = None,
    max_failures: int = 0,
    stop_after_steps: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """Train in one Ray Train worker (`TorchTrainer`); returns `train_result.json` of `out_dir`, None if stopped early.

    The tiny model trains in a single process: one worker, so no gradient all-reduce is needed. The worker asks
    for `cpus_per_worker` CPUs (torch uses `config.threads` of them). The same `name` under the same
    `storage_path` is the same Ray Train run: a second call restores its latest reported checkpoint (the worker
    reads it with `ray.train.get_checkpoint()` when `out_dir` lost its resume state), so an interrupted training
    continues instead of starting over. Every `log_every_steps` steps the worker reports `step`, `loss`,
    `steps_per_s` and `eta_s` to Ray Train and hands the line (`TrainingProgress`) to `progress`, which must
    pickle (it travels to the worker in the loop config).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out = Path(out_dir).resolve()
    loop_config = {
        "t2i": config.to_dict(),
        "data_dir": str(Path(data_dir).resolve()),
        "out_dir": str(out),
        "seed": seed,
        "checkpoint_steps": [int(s) for s in checkpoint_steps],
        "stop_after_steps": stop_after_steps,
        "progress": progress,
        "device": "cuda" if use_gpu else "cpu",
    }
    gpu = {"GPU": 1.0} if use_gpu else {}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=1, use_gpu=use_gpu, resources_per_worker={"CPU": float(cpus_per_worker), **gpu}
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(Path(storage_path).resolve()) if storage_path is not None else None,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
        ),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    path = out / RESULT_FILE
    return json.loads(path.read_text()) if path.is_file() else None
