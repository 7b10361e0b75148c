"""Run `finetune` in Ray Train V2 workers (`ray.train.torch.TorchTrainer`); Ray is imported only when used.

Ray sets RANK/WORLD_SIZE/MASTER_* and starts the gloo (CPU) or NCCL (GPU) process group before the loop runs,
so DeepSpeed needs no launcher. Each worker runs `finetune` on the same stable `out_dir` (a shared file system
for more than one node): a retried trial resumes from the last Trainer checkpoint there, or from the
checkpoint that Ray Train holds when `out_dir` has none. Metrics go to `ray.train.report` on every log step,
every Trainer checkpoint is reported to Ray, and the final report carries `checkpoint_dir`.

Inside a Ray Tune trial (Ray Train V2: Tune runs a plain function per trial), call `finetune_on_ray` from the
trial function (never `num_workers=0` there).

Several workers are data-parallel DeepSpeed (ZeRO 0-3) on CPU as on GPU, through the HF Trainer's integration:
Ray starts a gloo group on CPU (NCCL on GPU); the Trainer's arguments take it as accelerate's multi-CPU state
(`use_cpu`), `radio.train.distributed.init_deepspeed_comm` hands it to DeepSpeed's comm layer, and DeepSpeed's
CPU accelerator runs its collectives over it (its shared-memory and oneCCL ops are switched off, so nothing is
compiled). The global batch is `num_workers x batch_size x grad_accum`; each worker reads its own slice of the
same seeded order, so a run on 2 workers at half the batch size follows the 1-worker run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radio.train.config import FinetuneConfig
from radio.train.finetune import finetune
from radio.train.result import METRICS_FILE, FinetuneError, FinetuneResult


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """The per-worker function: `config` holds `finetune` (a FinetuneConfig dict) and the folder paths.

    An optional `then` entry (a dict of `finetune`, `train_dir`, `out_dir`) is a second phase that continues from
    the first phase's model (purification: more fine-tuning on clean data). Both phases are resumable: a retried
    worker finds a completed first phase at once and resumes the second from the checkpoints in its own stable
    folder (the second phase reports nothing to Ray, so that Ray's checkpoint is always a first-phase one).
    """
    cfg = FinetuneConfig.from_dict(config["finetune"])
    finetune(
        cfg,
        config["base_model_dir"],
        config["train_dir"],
        config["out_dir"],
        stop_after_steps=config.get("stop_after_steps"),
        report_to_ray=True,
    )
    then = config.get("then")
    if then:
        finetune(
            FinetuneConfig.from_dict(then["finetune"]),
            config["out_dir"],
            then["train_dir"],
            then["out_dir"],
            report_to_ray=False,
        )


def finetune_on_ray(
    cfg: FinetuneConfig,
    base_model_dir: str | Path,
    train_dir: str | Path,
    out_dir: str | Path,
    *,
    num_workers: int = 1,
    use_gpu: bool = False,
    storage_path: str | Path | None = None,
    name: str | None = None,
    max_failures: int = 0,
    stop_after_steps: int | None = None,
) -> FinetuneResult | None:
    """Fine-tune through a `TorchTrainer` with `num_workers` workers; returns the result read from `out_dir`.

    Returns None when `stop_after_steps` stopped the run before the end (its checkpoint stays in `out_dir`).
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if num_workers < 1:
        raise FinetuneError(f"num_workers: must be >= 1, got {num_workers}")
    out = Path(out_dir).resolve()
    loop_config = {
        "finetune": cfg.to_dict(),
        "base_model_dir": str(Path(base_model_dir).resolve()),
        "train_dir": str(Path(train_dir).resolve()),
        "out_dir": str(out),
        "stop_after_steps": stop_after_steps,
    }
    run_config = RunConfig(
        name=name,
        storage_path=str(Path(storage_path).resolve()) if storage_path is not None else None,
        failure_config=FailureConfig(max_failures=max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=1),
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=run_config,
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    if not (out / METRICS_FILE).is_file():
        return None
    return FinetuneResult.load(out)
