"""The HF `TrainingArguments` of a fine-tune, from its config, device and DeepSpeed config."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from radio.train.config import FinetuneConfig


def training_arguments(cfg: FinetuneConfig, device: str, ds_config: dict[str, Any] | None, ckpt_root: Path) -> Any:
    """`TrainingArguments` writing Trainer checkpoints to `ckpt_root`; logging and tqdm are the recipe's own.

    Build them before the model: with ZeRO-3 the model is then partitioned while it loads.
    """
    from transformers import TrainingArguments

    schedule = cfg.lr_schedule
    if schedule == "constant" and cfg.warmup_ratio > 0:
        schedule = "constant_with_warmup"
    # transformers 5 renamed gradient_checkpointing (still accepted, warns) to activation_checkpointing.
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return TrainingArguments(
        output_dir=str(ckpt_root),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps is not None else -1,
        lr_scheduler_type=schedule,
        warmup_steps=cfg.warmup_ratio if cfg.warmup_ratio > 0 else 0,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        optim="adamw_torch" if device == "cpu" else "adamw_torch_fused",
        bf16=cfg.precision == "bf16",
        fp16=cfg.precision == "fp16",
        deepspeed=ds_config,
        # On CPU with DeepSpeed too: accelerate finds a multi-process run on CPU only through `use_cpu` (its
        # MULTI_CPU state over gloo, world size from RANK/WORLD_SIZE); without it, it sees no accelerator, a
        # world of one, and DeepSpeed's batch check fails (train_batch_size != micro x accum x world).
        use_cpu=device == "cpu",
        logging_strategy="steps",
        logging_steps=cfg.log_every_steps,
        logging_first_step=True,
        save_strategy="steps" if cfg.save_every_steps else "epoch",
        save_steps=cfg.save_every_steps or 500,
        save_total_limit=1,
        report_to=[],
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,
        dataloader_pin_memory=device == "cuda",
        **{checkpointing: cfg.gradient_checkpointing},
    )
