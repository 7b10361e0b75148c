"""Loading local Hugging Face checkpoints and tokenizers by path (never from a hub), and vocabulary checks.

The watermark is defined over the model's logits width (`model_vocab_size`), which often differs from
`len(tokenizer)` (models pad their embedding matrix to a multiple of 64 or 128). Every consumer records the logits
width, and `check_tokenizer_fits` rejects a tokenizer that can emit ids the model has no logit for.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase


class ModelPathError(FileNotFoundError):
    """A model or tokenizer folder is missing or is not a loadable checkpoint; the message names the path."""


class VocabMismatchError(ValueError):
    """Two models or a model and its tokenizer disagree on the vocabulary; the message names both sides."""


def _require_dir(path: Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ModelPathError(f"{what} {path}: folder not found")
    return path


def load_tokenizer(path: str | Path, padding_side: str = "left") -> PreTrainedTokenizerBase:
    """The tokenizer saved in local folder `path`; left padding by default (batched generation needs it)."""
    path = _require_dir(Path(path), "tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelPathError(f"tokenizer {path}: not a loadable tokenizer folder ({err})") from err
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        # Many causal LMs ship without a pad token; padded positions are masked out, so eos is a safe stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str | Path, dtype: torch.dtype | None = None, device: str = "cpu") -> PreTrainedModel:
    """The causal LM saved in local folder `path`, in eval mode on `device` (nothing is downloaded)."""
    path = _require_dir(Path(path), "model")
    if not (path / "config.json").is_file():
        raise ModelPathError(f"model {path}: no config.json, not a save_pretrained folder")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as err:
        raise ModelPathError(f"model {path}: not a loadable checkpoint ({err})") from err
    return model.to(device).eval()


def model_vocab_size(model: PreTrainedModel) -> int:
    """Width of the model's logits: the vocabulary the watermark is defined over."""
    return int(model.get_output_embeddings().weight.shape[0])


def check_tokenizer_fits(tokenizer: PreTrainedTokenizerBase, vocab_size: int, where: str) -> None:
    """Raise VocabMismatchError when the tokenizer has ids at or above the model's logits width `vocab_size`."""
    if len(tokenizer) > vocab_size:
        raise VocabMismatchError(
            f"{where}: tokenizer has {len(tokenizer)} entries but the model's logits are only {vocab_size} wide"
        )


def tokenizer_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    """Hash of the token -> id map and the special tokens: equal digests mean interchangeable tokenizers."""
    payload = json.dumps(
        {"vocab": sorted(tokenizer.get_vocab().items()), "special": tokenizer.special_tokens_map},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def check_same_vocabulary(dir_a: str | Path, dir_b: str | Path) -> int:
    """Check that models A and B share tokenizer and logits width (radioactivity needs one token space).

    Returns the shared logits width; raises VocabMismatchError naming both folders otherwise. Reads only the
    config and tokenizer files, not the weights.
    """
    from transformers import AutoConfig

    widths = []
    digests = []
    for name, folder in (("base_a", dir_a), ("base_b", dir_b)):
        folder = _require_dir(Path(folder), f"{name}")
        try:
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as err:
            raise ModelPathError(f"{name} {folder}: not a loadable checkpoint ({err})") from err
        tokenizer = load_tokenizer(folder)
        width = int(getattr(config, "vocab_size", 0) or config.get_text_config().vocab_size)
        check_tokenizer_fits(tokenizer, width, f"{name} {folder}")
        widths.append(width)
        digests.append(tokenizer_digest(tokenizer))
    if widths[0] != widths[1]:
        raise VocabMismatchError(f"base_a {dir_a} has vocab_size {widths[0]} but base_b {dir_b} has {widths[1]}")
    if digests[0] != digests[1]:
        raise VocabMismatchError(f"base_a {dir_a} and base_b {dir_b} have different tokenizers")
    return widths[0]
