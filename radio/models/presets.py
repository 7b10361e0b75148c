"""Named size presets of a Llama-style causal LM, built from a config (no download, no checkpoint).

The tiny presets train on 2 CPU cores in minutes, so that model size is a real sweep axis on CPU. Parameter counts
depend on the vocabulary; `PRESETS[name].params_at_2048` is the exact count at the default 2,048-entry tokenizer
with tied input/output embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from radio.config import ConfigError


@dataclass(frozen=True)
class ModelPreset:
    """Shape of a Llama-style model; the vocabulary size comes from the tokenizer at build time."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int = 512
    tie_embeddings: bool = True
    params_at_2048: int = 0  # exact count at vocab 2048 with tied embeddings, for documentation and tests


PRESETS: dict[str, ModelPreset] = {
    "tiny-0.5m": ModelPreset(hidden_size=96, num_layers=3, num_heads=4, intermediate_size=256, params_at_2048=529_056),
    "tiny-1m": ModelPreset(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=352, params_at_2048=1_066_112),
    "tiny-4m": ModelPreset(hidden_size=256, num_layers=4, num_heads=8, intermediate_size=688, params_at_2048=3_688_704),
}


def get_preset(name: str) -> ModelPreset:
    """The preset called `name`, or a ConfigError listing the known names."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown model preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]


def llama_config(
    preset: ModelPreset, vocab_size: int, bos_token_id: int | None, eos_token_id: int | None, pad_token_id: int | None
) -> LlamaConfig:
    """The `LlamaConfig` of `preset` for a tokenizer with `vocab_size` entries and the given special ids."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=preset.hidden_size,
        intermediate_size=preset.intermediate_size,
        num_hidden_layers=preset.num_layers,
        num_attention_heads=preset.num_heads,
        num_key_value_heads=preset.num_heads,
        max_position_embeddings=preset.max_positions,
        tie_word_embeddings=preset.tie_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


def build_model(
    name: str,
    vocab_size: int,
    seed: int,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> LlamaForCausalLM:
    """A freshly initialised model of preset `name`; `seed` fixes the initial weights (nothing random globally)."""
    config = llama_config(get_preset(name), vocab_size, bos_token_id, eos_token_id, pad_token_id)
    # Initialise under a forked RNG so the caller's global torch state is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
