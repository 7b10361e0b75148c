"""Fine-tuning configuration: one frozen dataclass, validated on construction, built from a dict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from radio.config import from_dict, require, to_dict
from radio.train.methods import METHODS

Schedule = Literal["cosine", "linear", "constant"]
Precision = Literal["fp32", "bf16", "fp16"]
Device = Literal["auto", "cpu", "cuda"]

DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class FinetuneConfig:
    """How model B is fine-tuned on a prompt/answer dataset (loss on the answer tokens only).

    `zero_stage` None trains with the plain HF Trainer; 0-3 trains through DeepSpeed with that ZeRO stage (on
    CPU with a torch optimizer and the gloo backend). `max_steps`, when set, caps the optimizer steps and
    replaces `epochs` as the length of the run (and of the learning-rate schedule). `save_every_steps` None
    saves a resumable Trainer checkpoint at the end of each epoch; checkpoints are deleted once the final
    model is saved unless `keep_checkpoints`.

    `replay_ratio` > 0 mixes clean pre-training text into the fine-tune (replay, against forgetting what B knew):
    round(replay_ratio x examples) blocks of `max_seq_len` tokens from split `replay_split` of the corpus folder
    `replay_corpus` (a `radio.data` corpus stage: Bob's own half `b`), with the loss on every token.
    """

    method: str = "full"  # a name in radio.train.methods.METHODS
    learning_rate: float = 1e-4
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    max_seq_len: int = 512
    lr_schedule: Schedule = "cosine"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    append_eos: bool = True
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = DEFAULT_LORA_TARGETS
    zero_stage: int | None = 0
    precision: Precision = "fp32"
    device: Device = "auto"
    gradient_checkpointing: bool = False
    log_every_steps: int = 10
    save_every_steps: int | None = None
    keep_checkpoints: bool = False
    replay_ratio: float = 0.0
    replay_corpus: str | None = None
    replay_split: str = "b"

    def __post_init__(self) -> None:
        require(
            math.isfinite(self.replay_ratio) and self.replay_ratio >= 0,
            "replay_ratio",
            f"must be >= 0, got {self.replay_ratio}",
        )
        require(
            self.replay_ratio == 0 or self.replay_corpus is not None,
            "replay_corpus",
            "needs a corpus folder when replay_ratio > 0",
        )
        METHODS.get(self.method)  # the error names the field and every registered method
        require(
            isinstance(self.learning_rate, int | float)
            and math.isfinite(self.learning_rate)
            and 0 < self.learning_rate <= 1,
            "learning_rate",
            f"must be a finite number in (0, 1], got {self.learning_rate!r}",
        )
        require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", f"must be >= 1, got {self.max_steps}")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.grad_accum >= 1, "grad_accum", f"must be >= 1, got {self.grad_accum}")
        require(self.max_seq_len >= 2, "max_seq_len", f"must be >= 2, got {self.max_seq_len}")
        require(
            self.lr_schedule in ("cosine", "linear", "constant"),
            "lr_schedule",
            f"must be cosine, linear or constant, got {self.lr_schedule!r}",
        )
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        require(
            math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            "weight_decay",
            f"must be >= 0, got {self.weight_decay}",
        )
        require(
            math.isfinite(self.max_grad_norm) and self.max_grad_norm >= 0,
            "max_grad_norm",
            f"must be >= 0 (0 disables clipping), got {self.max_grad_norm}",
        )
        require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        require(self.lora_r >= 1, "lora_r", f"must be >= 1, got {self.lora_r}")
        require(self.lora_alpha > 0, "lora_alpha", f"must be > 0, got {self.lora_alpha}")
        require(0 <= self.lora_dropout < 1, "lora_dropout", f"must be in [0, 1), got {self.lora_dropout}")
        require(
            len(self.lora_target_modules) > 0 and all(self.lora_target_modules),
            "lora_target_modules",
            "must name at least one module (e.g. q_proj, v_proj)",
        )
        require(
            self.zero_stage is None or self.zero_stage in (0, 1, 2, 3),
            "zero_stage",
            f"must be 0, 1, 2, 3 or null (no DeepSpeed), got {self.zero_stage!r}",
        )
        require(self.precision in ("fp32", "bf16", "fp16"), "precision", f"unknown precision {self.precision!r}")
        require(
            self.device in ("auto", "cpu", "cuda"),
            "device",
            f"must be auto, cpu or cuda, got {self.device!r}",
        )
        # bf16 trains on CPU (through DeepSpeed's bf16 optimizer or torch autocast), so the CPU path can check
        # what a GPU run does; fp16 needs a loss scaler that only CUDA kernels implement.
        require(
            not (self.device == "cpu" and self.precision == "fp16"),
            "precision",
            "fp16 needs a GPU; use fp32 or bf16 with device cpu",
        )
        require(self.log_every_steps >= 1, "log_every_steps", f"must be >= 1, got {self.log_every_steps}")
        require(
            self.save_every_steps is None or self.save_every_steps >= 1,
            "save_every_steps",
            f"must be >= 1 or null (once per epoch), got {self.save_every_steps}",
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        """Build from a plain mapping (YAML); unknown keys or wrong types raise ConfigError naming the key."""
        return from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view, used for the stage hash and the metrics file."""
        return to_dict(self)
