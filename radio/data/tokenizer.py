"""A byte-level BPE tokenizer trained on the corpus with `tokenizers`, saved as a `PreTrainedTokenizerFast`.

Byte-level: every string round-trips exactly (no unknown token). Special tokens `<pad>`, `<s>` (bos) and `</s>`
(eos) take ids 0, 1 and 2. The tokenizer adds no special tokens by itself: callers prepend bos and append eos
where they need them (`encode_document`), so the same code also serves real tokenizers with their own templates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from radio.cache import StageOutput, run_stage
from radio.config import require, to_dict

log = logging.getLogger(__name__)

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


@dataclass(frozen=True)
class TokenizerConfig:
    """Size of the BPE vocabulary (special tokens included) and the merge frequency threshold."""

    vocab_size: int = 2048
    min_frequency: int = 2

    def __post_init__(self) -> None:
        # 256 byte symbols + 3 specials is the floor of a byte-level BPE vocabulary.
        require(self.vocab_size >= 260, "tokenizer.vocab_size", f"must be >= 260, got {self.vocab_size}")
        require(self.min_frequency >= 1, "tokenizer.min_frequency", f"must be >= 1, got {self.min_frequency}")


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts` (deterministic for a given input order)."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD)


def encode_document(tokenizer: PreTrainedTokenizerBase, text: str, add_eos: bool = True) -> list[int]:
    """Token ids of `text` as a training document: bos (if the tokenizer has one), the text, then eos."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id, *ids]
    if add_eos and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids


def build_tokenizer(cfg: TokenizerConfig, corpus: StageOutput, root: Path | None = None) -> StageOutput:
    """The cached tokenizer stage, trained on the `a` and `b` halves of `corpus` (held-out text stays unseen)."""
    from radio.data.corpus import load_split

    def build(out: Path) -> dict[str, int]:
        texts = load_split(corpus.path, "a") + load_split(corpus.path, "b")
        tokenizer = train_tokenizer(texts, cfg)
        tokenizer.save_pretrained(str(out))
        log.info("tokenizer: %d entries trained on %d documents", len(tokenizer), len(texts))
        return {"vocab_size": len(tokenizer), "documents": len(texts)}

    return run_stage("tokenizer", to_dict(cfg), build, inputs={"corpus": corpus.hash}, root=root)
