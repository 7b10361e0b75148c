"""Model presets (tiny Llama-style sizes built from a config) and loading of local checkpoints by path."""

from radio.models.loading import (
    ModelPathError,
    VocabMismatchError,
    check_same_vocabulary,
    check_tokenizer_fits,
    load_model,
    load_tokenizer,
    model_vocab_size,
)
from radio.models.presets import PRESETS, ModelPreset, build_model, count_parameters, get_preset
from radio.models.pretrain import PretrainConfig, evaluate_loss, pretrain

__all__ = [
    "PRESETS",
    "ModelPathError",
    "ModelPreset",
    "PretrainConfig",
    "VocabMismatchError",
    "build_model",
    "check_same_vocabulary",
    "check_tokenizer_fits",
    "count_parameters",
    "evaluate_loss",
    "get_preset",
    "load_model",
    "load_tokenizer",
    "model_vocab_size",
    "pretrain",
]
