"""The fine-tuning recipe: B on prompt/answer data with the HF Trainer, optionally via DeepSpeed, full or LoRA.

A thin recipe in the manner of torchtune: `FinetuneRecipe.setup` builds the training arguments (with the DeepSpeed
config), the model (through the method: `radio.train.methods.full` / `.lora`) and the output folder (resuming
from its checkpoints); `train` runs the Trainer and saves. The components live beside it: `data` (rows, collator),
`distributed` (device, DeepSpeed, environment), `callbacks`, `checkpoint` (folder state, resume), `result`.

`finetune(cfg, base_model_dir, train_dir, out_dir)` trains into a *stable* folder and is resumable: a rerun on the
same `out_dir` resumes from the last complete Trainer checkpoint in `out_dir/checkpoints`, and returns at once when
`out_dir` is already complete. Inside a Ray Train worker it also reports metrics and checkpoints to Ray. The cached
stage over it is `radio.train.stage.finetune_stage`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radio.train import checkpoint
from radio.train.arguments import training_arguments
from radio.train.config import FinetuneConfig
from radio.train.data import Collator, TrainInputs, check_base_dir, load_inputs
from radio.train.distributed import (
    barrier,
    deepspeed_config,
    init_deepspeed_comm,
    prepare_deepspeed,
    resolve_device,
    run_env,
)
from radio.train.methods import METHODS
from radio.train.result import CHECKPOINTS_DIR, METRICS_FILE, RUN_FILE, STAGING_DIR, FinetuneError, FinetuneResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetunePaths:
    """Where a fine-tune reads from and writes to (absolute)."""

    base_model_dir: Path
    train_dir: Path
    out_dir: Path

    @classmethod
    def resolve(cls, base_model_dir: str | Path, train_dir: str | Path, out_dir: str | Path) -> FinetunePaths:
        """Absolute paths; the base model and the training data must exist."""
        paths = cls(Path(base_model_dir).resolve(), Path(train_dir).resolve(), Path(out_dir).resolve())
        check_base_dir(paths.base_model_dir)
        if not paths.train_dir.exists():
            raise FinetuneError(f"{paths.train_dir}: training dataset folder not found")
        return paths


@dataclass(frozen=True)
class RunOptions:
    """How this session runs: a planned stop, Ray reporting, extra Trainer callbacks."""

    stop_after_steps: int | None = None
    report_to_ray: bool = False
    callbacks: tuple[Any, ...] = ()


def finetune(
    cfg: FinetuneConfig,
    base_model_dir: str | Path,
    train_dir: str | Path,
    out_dir: str | Path,
    *,
    stop_after_steps: int | None = None,
    report_to_ray: bool | None = None,
    callbacks: Sequence[Any] = (),
) -> FinetuneResult:
    """Fine-tune the model in `base_model_dir` on the dataset in `train_dir` into the stable folder `out_dir`.

    Resumable: a call on an `out_dir` that holds Trainer checkpoints of the same config and inputs resumes
    from the last complete one (inside Ray Train, from Ray's checkpoint when `out_dir` has none); a call on a
    completed `out_dir` returns its result without training; an `out_dir` of another config or input is
    refused. `stop_after_steps` stops after that many optimizer steps with a checkpoint saved (an interruption
    on purpose; the result has `completed=False`). `report_to_ray` None means: when running inside a Ray Train
    worker. `callbacks` are extra `transformers.TrainerCallback`s (timing, custom reporting).
    """
    paths = FinetunePaths.resolve(base_model_dir, train_dir, out_dir)
    identity = checkpoint.run_identity(cfg, paths.base_model_dir, paths.train_dir)
    done = checkpoint.completed_result(paths.out_dir, identity)
    if done is not None:
        return done
    if report_to_ray is None:
        report_to_ray = checkpoint.in_ray_train_worker()
    run = RunOptions(stop_after_steps, report_to_ray, tuple(callbacks))
    recipe = FinetuneRecipe(cfg, paths, run, identity)
    # DeepSpeed needs a distributed environment even for one process; the plain Trainer runs without one.
    with run_env(recipe.ds_config is not None, recipe.device):
        recipe.setup()
        return recipe.train()


class FinetuneRecipe:
    """One fine-tune: inputs are read and checked on construction, `setup` prepares, `train` trains and saves."""

    def __init__(self, cfg: FinetuneConfig, paths: FinetunePaths, run: RunOptions, identity: dict[str, Any]) -> None:
        self.cfg, self.paths, self.run, self.identity = cfg, paths, run, identity
        self.method = METHODS.get(cfg.method)()
        self.inputs: TrainInputs = load_inputs(cfg, paths.base_model_dir, paths.train_dir)  # every input error first
        self.device = resolve_device(cfg)
        self.ds_config = deepspeed_config(cfg)
        if self.ds_config is not None:
            prepare_deepspeed(self.device)
        self.ckpt_root = paths.out_dir / CHECKPOINTS_DIR

    # -- setup ------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Training arguments (before the model: with ZeRO-3 it is partitioned while it loads), model, folder."""
        self.start = time.perf_counter()
        self.args = training_arguments(self.cfg, self.device, self.ds_config, self.ckpt_root)
        if self.ds_config is not None:
            init_deepspeed_comm()  # before the model: ZeRO-3 partitions it over this group while it loads
        self.model = self._setup_model()
        self.resume = self._setup_output()

    def _setup_model(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        base, data = self.paths.base_model_dir, self.inputs.data
        try:
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        except Exception as err:
            raise FinetuneError(f"{base}: cannot load the model ({err})") from err
        weight = model.get_input_embeddings().weight
        rows = int(getattr(weight, "ds_shape", weight.shape)[0])
        if data.max_token_id >= rows:
            raise FinetuneError(
                f"{self.paths.train_dir}: token id {data.max_token_id} >= the {rows} embedding rows of {base}"
            )
        # The method's new weights (LoRA's A matrices) are drawn from the config's seed, not from whatever the
        # process's RNG holds: a run is then the same in any process, and every rank starts from the same adapter.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            model = self.method.wrap(model, self.cfg, base)
        self.trainable, self.total = _count_params(model)
        log.info(
            "fine-tune %s: %d examples (%d dropped), %d/%d trainable params, device %s (%d torch threads), %s, "
            "world size %d, %s",
            self.cfg.method,
            data.n_examples,
            data.n_dropped,
            self.trainable,
            self.total,
            self.device,
            torch.get_num_threads(),
            f"DeepSpeed ZeRO-{self.cfg.zero_stage}" if self.ds_config else "no DeepSpeed",
            self.args.world_size,
            self.cfg.precision,
        )
        return model

    def _setup_output(self) -> Path | None:
        """Rank 0 prepares the folder (and fetches Ray's checkpoint); every rank then finds the one to resume."""
        out_dir = self.paths.out_dir
        if self.args.process_index == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.clean_incomplete_outputs(out_dir)
            self.ckpt_root.mkdir(exist_ok=True)
            checkpoint.write_json(out_dir / RUN_FILE, self.identity)
            if checkpoint.last_checkpoint(self.ckpt_root, clean=True) is None and self.run.report_to_ray:
                checkpoint.ray_restore_checkpoint(self.ckpt_root)
        barrier()
        resume = checkpoint.last_checkpoint(self.ckpt_root)
        if resume is not None:
            log.info("resuming from %s", resume)
        return resume

    # -- train ------------------------------------------------------------------------------------------------
    def train(self) -> FinetuneResult:
        """Run the Trainer (from the resume point), save the final model, write the metrics file last."""
        from transformers import Trainer
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        from radio.train.callbacks import recipe_callbacks

        progress, callbacks = recipe_callbacks(self.run.report_to_ray, self.run.stop_after_steps)
        trainer = Trainer(
            model=self.model,
            args=self.args,
            train_dataset=self.inputs.data.dataset,
            data_collator=Collator(self.inputs.pad_id),
            callbacks=[*callbacks, *self.run.callbacks],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        output = trainer.train(resume_from_checkpoint=str(self.resume) if self.resume is not None else None)
        state = trainer.state
        completed = state.global_step >= state.max_steps
        self._save(trainer, completed)
        result = self._result(output, state, completed, progress.tokens_per_s)
        if completed and self.args.process_index == 0:
            self._write_metrics(result, state)
        barrier()
        if self.run.report_to_ray:
            _report_final(result)
        del trainer
        return result

    def _save(self, trainer: Any, completed: bool) -> None:
        """Save the finished model through a staging folder, so the output folder never holds half a model."""
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        rank0, out_dir = self.args.process_index == 0, self.paths.out_dir
        if not completed:
            unset_hf_deepspeed_config()
            return
        staging = out_dir / STAGING_DIR
        if rank0:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
        barrier()
        self.method.save(trainer, staging)  # collective under ZeRO-3
        barrier()
        unset_hf_deepspeed_config()  # later from_pretrained calls here must not be ZeRO-3 partitioned
        if rank0:
            self.method.finalize(self.paths.base_model_dir, staging)
            self.inputs.tokenizer.save_pretrained(str(staging))
            (staging / "training_args.bin").unlink(missing_ok=True)
            for entry in staging.iterdir():
                os.replace(entry, out_dir / entry.name)
            staging.rmdir()

    def _result(self, output: Any, state: Any, completed: bool, tokens_per_s: float) -> FinetuneResult:
        out_dir, data = self.paths.out_dir, self.inputs.data
        return FinetuneResult(
            checkpoint_dir=out_dir,
            adapter_dir=self.method.adapter_dir(out_dir) if completed else None,
            metrics_path=out_dir / METRICS_FILE if completed else None,
            completed=completed,
            method=self.cfg.method,
            steps=int(state.global_step),
            max_steps=int(state.max_steps),
            resumed_from_step=int(self.resume.name.split("-")[-1]) if self.resume is not None else 0,
            train_loss=float(output.training_loss) if output.training_loss is not None else None,
            loss_curve=tuple((int(h["step"]), float(h["loss"])) for h in state.log_history if "loss" in h),
            train_tokens=int(state.num_input_tokens_seen),
            tokens_per_s=float(tokens_per_s),
            wall_time_s=time.perf_counter() - self.start,
            trainable_params=self.trainable,
            total_params=self.total,
            n_examples=data.n_examples,
            n_dropped=data.n_dropped,
            n_watermarked=data.n_watermarked,
        )

    def _write_metrics(self, result: FinetuneResult, state: Any) -> None:
        metrics = {
            "run": self.identity,
            "result": result.to_json(),
            "device": self.device,
            "deepspeed": self.ds_config,
            "world_size": self.args.world_size,
            "answer_tokens_per_epoch": self.inputs.data.answer_tokens,
            "log_history": state.log_history,
        }
        checkpoint.write_json(self.paths.out_dir / METRICS_FILE, metrics)  # last: marks the folder complete
        if not self.cfg.keep_checkpoints:
            shutil.rmtree(self.ckpt_root, ignore_errors=True)
        log.info("fine-tuned model saved to %s (%.0f tokens/s)", self.paths.out_dir, result.tokens_per_s)


def _count_params(model: Any) -> tuple[int, int]:
    trainable = total = 0
    for p in model.parameters():
        n = int(getattr(p, "ds_numel", p.numel()))
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def _report_final(result: FinetuneResult) -> None:
    import ray.train

    ray.train.report(
        {
            "step": result.steps,
            "completed": int(result.completed),  # not "done": Tune reads that key as "stop this trial"
            "final_loss": result.final_loss if result.final_loss is not None else float("nan"),
            "tokens_per_s": result.tokens_per_s,
            "train_tokens": result.train_tokens,
            "checkpoint_dir": str(result.checkpoint_dir),
        }
    )
