"""Configuration of the tiny text-to-image model and its training: one frozen dataclass, validated on creation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from radio.config import from_dict, require, to_dict


@dataclass(frozen=True)
class TinyT2IConfig:
    """Architecture and training recipe of the tiny pixel-space text-to-image diffusion model.

    The UNet denoises `image_size` x `image_size` RGB images directly (no VAE), with cross-attention to the last
    hidden states of a small CLIP text encoder that is trained jointly from scratch. Training is DDPM
    (v-prediction by default) with min-SNR-gamma loss weighting and caption dropout (the empty caption, so that
    the same model serves as the unconditional branch of classifier-free guidance).
    `block_out_channels` gives the UNet's width per resolution level; levels listed in
    `attention_levels` carry cross-attention blocks.
    """

    image_size: int = 32
    # ~1M UNet parameters, 0.36 s per step at batch 64 on 2 cores; attention at 16x16 costs 2-3x that (measured).
    block_out_channels: tuple[int, ...] = (16, 32, 64)
    attention_levels: tuple[int, ...] = (2,)
    layers_per_block: int = 1
    # The caption also enters globally: attention-pooled text states added to the timestep embedding (diffusers'
    # addition_embed_type "text"); cross-attention alone learned no conditioning in 150 toy steps.
    pooled_text_conditioning: bool = True
    pooled_text_heads: int = 4
    attention_head_dim: int = 8
    # "math": attention as explicit matmuls and a softmax; "sdpa": torch's fused scaled_dot_product_attention.
    # Same arithmetic, different kernels: at this model's 16-48 tokens the fused CPU kernel is overhead-bound,
    # and a training step on "math" took 7% less time on 2 cores (12 interleaved rounds, median); on a GPU
    # "sdpa" is the faster one.
    attention_kernel: str = "math"
    norm_num_groups: int = 8
    text_hidden_size: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate_size: int = 128
    max_caption_tokens: int = 48
    vocab_min_frequency: int = 1
    max_vocab_size: int = 4096
    train_steps: int = 1300
    batch_size: int = 64
    learning_rate: float = 1e-3
    # AdamW's fused kernel updates every parameter tensor in one call: 3.5 ms a step against 13 ms for the
    # per-tensor loop on 2 cores (measured), the same update up to float rounding. False: the loop (a device
    # without the fused kernel).
    fused_adamw: bool = True
    warmup_steps: int = 50
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    min_snr_gamma: float = 5.0
    caption_dropout: float = 0.1
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    # v-prediction learns the high-noise end (where sampling starts) far sooner than epsilon, whose x0 estimate
    # there divides by a vanishing sqrt(alpha_bar): in a 150-step toy run epsilon samples stayed noise.
    prediction_type: str = "v_prediction"
    horizontal_flip: bool = False
    threads: int = 0
    log_every_steps: int = 25

    def __post_init__(self) -> None:
        self._check_unet()
        self._check_text_encoder()
        self._check_training()

    def _check_unet(self) -> None:
        require(
            isinstance(self.image_size, int) and self.image_size >= 8 and self.image_size % 8 == 0,
            "image_size",
            f"must be a multiple of 8, at least 8, got {self.image_size!r}",
        )
        require(
            len(self.block_out_channels) >= 1 and all(isinstance(c, int) and c > 0 for c in self.block_out_channels),
            "block_out_channels",
            f"must be one or more positive integers, got {self.block_out_channels!r}",
        )
        levels = len(self.block_out_channels)
        require(
            self.image_size % (2 ** (levels - 1)) == 0,
            "block_out_channels",
            f"{levels} levels halve the image {levels - 1} times; image_size {self.image_size} does not divide",
        )
        require(
            len(self.attention_levels) >= 1 and all(0 <= lv < levels for lv in self.attention_levels),
            "attention_levels",
            f"must name at least one level in [0, {levels}), got {self.attention_levels!r}",
        )
        require(
            all(c % self.norm_num_groups == 0 for c in self.block_out_channels) and self.norm_num_groups > 0,
            "norm_num_groups",
            f"must divide every entry of block_out_channels {self.block_out_channels}, got {self.norm_num_groups}",
        )
        require(
            self.attention_head_dim > 0
            and all(self.block_out_channels[lv] % self.attention_head_dim == 0 for lv in self.attention_levels),
            "attention_head_dim",
            f"must divide the width of every attention level, got {self.attention_head_dim}",
        )
        require(
            self.attention_kernel in ("math", "sdpa"),
            "attention_kernel",
            f"must be 'math' or 'sdpa', got {self.attention_kernel!r}",
        )
        require(self.layers_per_block >= 1, "layers_per_block", f"must be >= 1, got {self.layers_per_block}")

    def _check_text_encoder(self) -> None:
        require(
            self.pooled_text_heads > 0 and self.text_hidden_size % self.pooled_text_heads == 0,
            "pooled_text_heads",
            f"must divide text_hidden_size {self.text_hidden_size}, got {self.pooled_text_heads}",
        )
        require(
            self.text_hidden_size > 0 and self.text_heads > 0 and self.text_hidden_size % self.text_heads == 0,
            "text_heads",
            f"must divide text_hidden_size {self.text_hidden_size}, got {self.text_heads}",
        )
        require(self.text_layers >= 1, "text_layers", f"must be >= 1, got {self.text_layers}")
        require(
            self.text_intermediate_size > 0,
            "text_intermediate_size",
            f"must be > 0, got {self.text_intermediate_size}",
        )
        # bos + eos need two positions; CLIP's own limit is 77 tokens.
        require(
            3 <= self.max_caption_tokens <= 77,
            "max_caption_tokens",
            f"must be in [3, 77], got {self.max_caption_tokens}",
        )
        require(self.vocab_min_frequency >= 1, "vocab_min_frequency", f"must be >= 1, got {self.vocab_min_frequency}")
        require(self.max_vocab_size >= 8, "max_vocab_size", f"must be >= 8, got {self.max_vocab_size}")

    def _check_training(self) -> None:
        require(self.train_steps >= 1, "train_steps", f"must be >= 1, got {self.train_steps}")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        require(
            math.isfinite(self.learning_rate) and 0 < self.learning_rate <= 1,
            "learning_rate",
            f"must be in (0, 1], got {self.learning_rate}",
        )
        require(self.warmup_steps >= 0, "warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(self.max_grad_norm > 0, "max_grad_norm", f"must be > 0, got {self.max_grad_norm}")
        require(self.min_snr_gamma > 0, "min_snr_gamma", f"must be > 0, got {self.min_snr_gamma}")
        require(0 <= self.caption_dropout < 1, "caption_dropout", f"must be in [0, 1), got {self.caption_dropout}")
        require(
            self.num_train_timesteps >= 10,
            "num_train_timesteps",
            f"must be >= 10, got {self.num_train_timesteps}",
        )
        require(
            self.beta_schedule in ("linear", "scaled_linear", "squaredcos_cap_v2"),
            "beta_schedule",
            f"must be 'linear', 'scaled_linear' or 'squaredcos_cap_v2', got {self.beta_schedule!r}",
        )
        require(
            self.prediction_type in ("epsilon", "v_prediction"),
            "prediction_type",
            f"must be 'epsilon' or 'v_prediction', got {self.prediction_type!r}",
        )
        require(self.threads >= 0, "threads", f"must be >= 0 (0: leave torch's setting), got {self.threads}")
        require(self.log_every_steps >= 1, "log_every_steps", f"must be >= 1, got {self.log_every_steps}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view (tuples as lists) for hashing, logging and the checkpoint's `t2i_config.json`."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TinyT2IConfig:
        """Build from a mapping; unknown keys and wrong types raise ConfigError naming the field."""
        return from_dict(cls, data, "TinyT2IConfig")
