"""Training data for the recipe: the prompt/answer dataset checked and turned into (input_ids, labels) rows.

The loss is on the answer tokens (and the appended EOS) only: labels are -100 on the prompt. `Collator` right-pads a
batch. Errors name the folder and the column.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radio.train.config import FinetuneConfig
from radio.train.result import FinetuneError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainData:
    """The checked training rows and what was counted while building them."""

    dataset: Any  # datasets.Dataset with input_ids, labels
    n_examples: int
    n_dropped: int
    n_watermarked: int | None
    answer_tokens: int
    max_token_id: int
    n_replay: int = 0


def check_base_dir(base_model_dir: Path) -> None:
    """Refuse a base model folder that is missing or has no config.json, naming it."""
    if not base_model_dir.is_dir():
        raise FinetuneError(f"{base_model_dir}: base model folder not found")
    if not (base_model_dir / "config.json").is_file():
        raise FinetuneError(f"{base_model_dir}: no config.json (expected a save_pretrained model folder)")


def load_train_data(
    train_dir: Path, cfg: FinetuneConfig, vocab_size: int, eos_id: int | None, where_vocab: str
) -> TrainData:
    """Load and check the prompt/answer dataset and turn it into (input_ids, labels) rows.

    Rows are prompt + answer (+ EOS), cut to `max_seq_len`; labels are -100 on the prompt. Rows left without
    any answer token after the cut are dropped (and counted). Errors name the folder and the column.
    """
    import datasets
    import pyarrow.compute as pc

    if not train_dir.exists():
        raise FinetuneError(f"{train_dir}: training dataset folder not found")
    try:
        data = datasets.load_from_disk(str(train_dir))
    except Exception as err:  # datasets raises several types for a folder that is not a saved dataset
        if _saved_without_rows(train_dir):  # datasets cannot load back a dataset saved with zero rows
            raise FinetuneError(f"{train_dir}: the training dataset is empty") from err
        raise FinetuneError(f"{train_dir}: not a datasets.save_to_disk folder ({err})") from err
    if isinstance(data, datasets.DatasetDict):
        if "train" not in data:
            raise FinetuneError(f"{train_dir}: a DatasetDict without a 'train' split ({sorted(data)})")
        data = data["train"]
    missing = [c for c in ("prompt_ids", "answer_ids") if c not in data.column_names]
    if missing:
        raise FinetuneError(f"{train_dir}: missing column(s) {missing}; has {data.column_names}")
    if len(data) == 0:
        raise FinetuneError(f"{train_dir}: the training dataset is empty")
    data = data.flatten_indices(keep_in_memory=True) if data._indices is not None else data
    table = data.data.table
    for column in ("prompt_ids", "answer_ids"):
        values = pc.list_flatten(table.column(column))
        if len(values) == 0:
            continue
        low, high = pc.min_max(values).values()
        if low.as_py() < 0:
            raise FinetuneError(f"{train_dir}: column {column} holds a negative token id {low.as_py()}")
        if high.as_py() >= vocab_size:
            raise FinetuneError(
                f"{train_dir}: column {column} holds token id {high.as_py()} >= the model's vocab_size "
                f"{vocab_size} ({where_vocab}); was the data tokenized for another model?"
            )
    max_id = max(int(pc.max(pc.list_flatten(table.column(c))).as_py() or 0) for c in ("prompt_ids", "answer_ids"))
    n_watermarked = None
    if "watermarked" in data.column_names:
        n_watermarked = int(pc.sum(table.column("watermarked").cast("int64")).as_py() or 0)
    tail = [eos_id] if cfg.append_eos and eos_id is not None else []
    max_len = cfg.max_seq_len

    def build(batch: Mapping[str, Sequence[Sequence[int]]]) -> dict[str, list[list[int]]]:
        ids_out, labels_out = [], []
        for prompt, answer in zip(batch["prompt_ids"], batch["answer_ids"], strict=True):
            target = list(answer) + tail
            ids = (list(prompt) + target)[:max_len]
            labels = ([-100] * len(prompt) + target)[:max_len]
            if len(ids) < 2 or all(v == -100 for v in labels[1:]):
                continue  # no answer token left to learn from (the first position is never predicted)
            ids_out.append(ids)
            labels_out.append(labels)
        return {"input_ids": ids_out, "labels": labels_out}

    rows = data.map(
        build,
        batched=True,
        remove_columns=data.column_names,
        keep_in_memory=True,
        desc="tokens to training rows",
    )
    n_dropped = len(data) - len(rows)
    if n_dropped:
        log.warning("%d of %d examples dropped: no answer token within max_seq_len=%d", n_dropped, len(data), max_len)
    if len(rows) == 0:
        raise FinetuneError(f"{train_dir}: no example keeps an answer token within max_seq_len={max_len}")
    answer_tokens = sum(sum(1 for v in labels[1:] if v != -100) for labels in rows["labels"])
    return TrainData(rows, len(rows), n_dropped, n_watermarked, answer_tokens, max_id)


@dataclass(frozen=True)
class TrainInputs:
    """Tokenizer, special ids, the model's vocabulary size and the training rows."""

    tokenizer: Any
    eos_id: int | None
    pad_id: int
    vocab_size: int
    data: TrainData


def load_inputs(cfg: FinetuneConfig, base_model_dir: Path, train_dir: Path) -> TrainInputs:
    """Tokenizer, special ids and the checked training rows, read without loading the model weights."""
    from transformers import AutoConfig, AutoTokenizer

    check_base_dir(base_model_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    except Exception as err:  # transformers raises OSError/ValueError/... for a folder without a tokenizer
        raise FinetuneError(f"{base_model_dir}: cannot load its tokenizer ({err})") from err
    try:
        config = AutoConfig.from_pretrained(base_model_dir)
    except Exception as err:
        raise FinetuneError(f"{base_model_dir}/config.json: cannot read it ({err})") from err
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    vocab_size = getattr(text_config, "vocab_size", None)
    if not isinstance(vocab_size, int) or vocab_size <= 0:
        raise FinetuneError(f"{base_model_dir}/config.json: no vocab_size")
    eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else text_config.eos_token_id
    if isinstance(eos_id, list):
        eos_id = eos_id[0] if eos_id else None
    if cfg.append_eos and eos_id is None:
        raise FinetuneError(f"{base_model_dir}: append_eos is set but neither tokenizer nor config has an EOS")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    if len(tokenizer) > vocab_size:
        log.warning("tokenizer has %d entries but the model only %d rows", len(tokenizer), vocab_size)
    data = load_train_data(train_dir, cfg, vocab_size, eos_id, f"{base_model_dir / 'config.json'}")
    if cfg.replay_ratio > 0:
        data = add_replay(data, cfg, tokenizer, vocab_size)
    return TrainInputs(tokenizer, eos_id, 0 if pad_id is None else pad_id, vocab_size, data)


def add_replay(data: TrainData, cfg: FinetuneConfig, tokenizer: Any, vocab_size: int) -> TrainData:
    """`data` with round(replay_ratio x examples) blocks of clean corpus text added (loss on every token).

    Blocks of `max_seq_len` tokens are cut from the documents of `replay_split` of `replay_corpus` (back to back,
    EOS between documents) and drawn without replacement with the config's seed.
    """
    import random

    import datasets

    from radio.data.corpus import load_split

    n_blocks = round(cfg.replay_ratio * data.n_examples)
    if n_blocks == 0:
        return data
    assert cfg.replay_corpus is not None  # checked by FinetuneConfig
    try:
        texts = load_split(cfg.replay_corpus, cfg.replay_split)
    except (OSError, ValueError) as err:
        raise FinetuneError(
            f"replay_corpus {cfg.replay_corpus}: cannot read split {cfg.replay_split!r} ({err})"
        ) from err
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream = [t for text in texts for t in [*tokenizer(text, add_special_tokens=False)["input_ids"], *eos]]
    stream = [t for t in stream if t < vocab_size]
    size = cfg.max_seq_len
    blocks = [stream[i : i + size] for i in range(0, len(stream) - size + 1, size)]
    if len(blocks) < n_blocks:
        raise FinetuneError(
            f"replay_ratio: needs {n_blocks} blocks of {size} tokens but {cfg.replay_corpus} split "
            f"{cfg.replay_split!r} gives {len(blocks)}"
        )
    chosen = random.Random(f"replay/{cfg.seed}").sample(range(len(blocks)), n_blocks)
    replay = datasets.Dataset.from_dict(
        {"input_ids": [blocks[i] for i in chosen], "labels": [blocks[i] for i in chosen]},
        features=data.dataset.features,
    )
    merged = datasets.concatenate_datasets([data.dataset, replay]).shuffle(seed=cfg.seed).flatten_indices()
    log.info("replay: %d clean blocks of %d tokens added to %d examples", n_blocks, size, data.n_examples)
    return TrainData(
        merged,
        data.n_examples,
        data.n_dropped,
        data.n_watermarked,
        data.answer_tokens,
        max(data.max_token_id, max(max(blocks[i]) for i in chosen)),
        n_blocks,
    )


def _saved_without_rows(folder: Path) -> bool:
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("_data_files") == []


class Collator:
    """Right-pads a batch: pad id in input_ids, -100 in labels, 0 in attention_mask."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        n = len(features)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        labels = torch.full((n, width), -100, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, f in enumerate(features):
            length = len(f["input_ids"])
            input_ids[i, :length] = torch.tensor(f["input_ids"], dtype=torch.long)
            labels[i, :length] = torch.tensor(f["labels"], dtype=torch.long)
            mask[i, :length] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}
