"""A byte-level BPE tokenizer trained on the corpus with `tokenizers`, saved as a `PreTrainedTokenizerFast`.

Byte-level: every string round-trips exactly (no unknown token). Special tokens `<pad>`, `<s>` (bos) and `</s>`
(eos) take ids 0, 1 and 2. The tokenizer adds no special tokens by itself: callers prepend bos and append eos
where they need them (`encode_document`), so the same code also serves real tokenizers with their own templates.

Two options shape a tokenizer like a real chat model's (the `paper-mini` preset): `code` also trains it on the
standard library's code (docstrings cut, so held-out passages stay unseen), which a 32,000-entry vocabulary needs
(the docstrings alone stop near 16,400 entries), and `chat` gives it a chat template in Llama 2's `[INST]` format,
so that prompts go through `apply_chat_template` as a chat model's do. Both are left out of the stage's hash when
off (`OMIT_AT_DEFAULT`), so the tiny presets' cached tokenizers and trial ids keep their hashes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from radio.cache import StageOutput, run_stage
from radio.config import OMIT_AT_DEFAULT, require, to_dict

log = logging.getLogger(__name__)

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
# Llama 2's chat format, written as a Jinja template: each user turn is "<s>[INST] text [/INST]", each answer follows
# after a space and ends with "</s>" (no system turn: the miniature has none). A generation prompt is the open turn.
INST_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ bos_token }}[INST] {{ message['content'] }} [/INST]"
    "{% elif message['role'] == 'assistant' %} {{ message['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class TokenizerConfig:
    """Size of the BPE vocabulary (special tokens included) and the merge frequency threshold."""

    vocab_size: int = 2048
    min_frequency: int = 2
    code: bool = field(default=False, metadata=OMIT_AT_DEFAULT)  # also train on the stdlib's code (docstrings cut)
    chat: bool = field(default=False, metadata=OMIT_AT_DEFAULT)  # add the [INST] chat template

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
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    if cfg.chat:
        tokenizer.chat_template = INST_CHAT_TEMPLATE
    return tokenizer


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
    from radio.data.corpus import load_split, stdlib_code

    def build(out: Path) -> dict[str, int]:
        texts = load_split(corpus.path, "a") + load_split(corpus.path, "b")
        code = stdlib_code() if cfg.code else []
        tokenizer = train_tokenizer(texts + code, cfg)
        tokenizer.save_pretrained(str(out))
        log.info(
            "tokenizer: %d entries (%d asked) trained on %d documents and %d code files",
            len(tokenizer),
            cfg.vocab_size,
            len(texts),
            len(code),
        )
        if len(tokenizer) < cfg.vocab_size:
            log.warning("tokenizer: BPE found only %d of the %d entries asked", len(tokenizer), cfg.vocab_size)
        return {"vocab_size": len(tokenizer), "documents": len(texts), "code_files": len(code)}

    return run_stage("tokenizer", to_dict(cfg), build, inputs={"corpus": corpus.hash}, root=root)
