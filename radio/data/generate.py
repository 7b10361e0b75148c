"""Self-instruct generation: model A answers prompts, with or without the watermark, saved as a dataset.

Watermarked and plain sets come from the same model, prompt pool and sampler (temperature, top-p): only the
watermark differs. They answer disjoint slices of one shuffled prompt pool: the watermarked set the first
`n_watermarked` prompts, the plain set the next `n_plain`, so no prompt is answered twice.

Stage output `generate/<hash>/data` is a `datasets.save_to_disk` folder, one record per kept answer:

| column          | type        | meaning                                                             |
|-----------------|-------------|---------------------------------------------------------------------|
| id              | int64       | position of the prompt in the shuffled pool (unique across both sets)|
| prompt          | str         | prompt text (the instruction, or the opening words of a passage)    |
| answer          | str         | decoded answer, special tokens removed                              |
| prompt_ids      | list[int32] | exact ids fed to the model (template and bos included)              |
| answer_ids      | list[int32] | generated ids, up to and excluding eos                              |
| finish_reason   | str         | "eos" or "length"                                                   |
| watermarked     | bool        | generated with the watermark                                        |
| scheme, k       | str, int32  | watermark scheme and window ("none", 0 for plain data)              |
| key_fingerprint | str         | public fingerprint of the key ("" for plain data); never the key    |

The manifest records the watermark's public parameters, the model's logits width and the counts (prompts,
generated, dropped as short / duplicate / near-duplicate, kept, tokens, tokens/s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from radio.cache import StageOutput, run_stage
from radio.config import ConfigError, require, to_dict
from radio.data.dedup import dedup_answers
from radio.data.prompts import Prompt, instruction_prompts, opening_prompts, prompt_pool, read_prompt_texts
from radio.inputs import input_digest
from radio.models.loading import check_tokenizer_fits, load_model, load_tokenizer, model_vocab_size
from radio.watermark import Watermark, WatermarkConfig, plain_generation_kwargs

log = logging.getLogger(__name__)


class EmptyDatasetError(ValueError):
    """A stage would produce (or was given) a dataset with no records; the message names the input."""


@dataclass(frozen=True)
class GenerateConfig:
    """How model A answers prompts: prompt source and style, sampling, batching, dedup, set sizes."""

    watermark: WatermarkConfig = field(default_factory=WatermarkConfig)
    # The default corpus's held-out split gives about 3,300 prompts of 16 tokens: 2,000 + 1,200 fit.
    n_watermarked: int = 2000  # prompts answered with the watermark (before dedup)
    n_plain: int = 1200  # prompts answered without it (the next slice of the same pool)
    prompts: Path | None = None  # None: the held-out split of the prepared corpus
    prompt_field: str = "text"
    prompt_style: Literal["auto", "opening", "chat", "instruction"] = "auto"
    prompt_tokens: int = 16  # opening style: length of each passage opening
    max_new_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.95
    batch_size: int = 64
    seed: int = 0
    dedup_ngram: int = 6
    dedup_threshold: float = 0.7
    min_answer_tokens: int = 4
    device: str = "cpu"
    # torch threads while generating on CPU; 0 = auto: 1 for models under 20M parameters (their matrices are too
    # small to gain from intra-op threads, and a 2-thread process stalls whenever another job holds a core),
    # torch's default otherwise.
    num_threads: int = 0

    def __post_init__(self) -> None:
        require(self.num_threads >= 0, "generate.num_threads", f"must be >= 0, got {self.num_threads}")
        require(self.n_watermarked >= 1, "generate.n_watermarked", f"must be >= 1, got {self.n_watermarked}")
        require(self.n_plain >= 0, "generate.n_plain", f"must be >= 0, got {self.n_plain}")
        require(self.prompt_tokens >= 1, "generate.prompt_tokens", f"must be >= 1, got {self.prompt_tokens}")
        require(self.max_new_tokens >= 1, "generate.max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")
        require(self.temperature > 0, "generate.temperature", f"must be > 0, got {self.temperature}")
        require(0 < self.top_p <= 1, "generate.top_p", f"must be in (0, 1], got {self.top_p}")
        require(self.batch_size >= 1, "generate.batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.dedup_ngram >= 1, "generate.dedup_ngram", f"must be >= 1, got {self.dedup_ngram}")
        require(
            0 < self.dedup_threshold <= 1, "generate.dedup_threshold", f"must be in (0, 1], got {self.dedup_threshold}"
        )
        require(
            self.min_answer_tokens >= 0, "generate.min_answer_tokens", f"must be >= 0, got {self.min_answer_tokens}"
        )


def build_prompts(cfg: GenerateConfig, tokenizer: PreTrainedTokenizerBase, prompts_path: Path) -> list[Prompt]:
    """The shuffled, deduplicated prompt pool of `prompts_path` in the configured (or detected) style."""
    texts = read_prompt_texts(prompts_path, cfg.prompt_field)
    style = cfg.prompt_style
    if style == "auto":
        # A corpus split continues text; an instruction file gets the chat template when the tokenizer has one.
        is_corpus = (prompts_path / "dataset_info.json").is_file() and prompts_path.name == "heldout"
        style = "opening" if is_corpus else ("chat" if getattr(tokenizer, "chat_template", None) else "instruction")
    if style == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ConfigError("generate.prompt_style: 'chat' but the model's tokenizer has no chat template")
    if style == "opening":
        prompts = opening_prompts(texts, tokenizer, cfg.prompt_tokens)
    else:
        prompts = instruction_prompts(texts, tokenizer, style)
    return prompt_pool(prompts, cfg.seed)


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Every id that ends an answer: the generation config's eos id(s) and the tokenizer's."""
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def sample_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[Prompt],
    generation_kwargs: dict[str, Any],
    cfg: GenerateConfig,
    desc: str = "generate",
) -> tuple[list[list[int]], list[str], dict[str, float]]:
    """Answer every prompt in batches (left padding); return answer ids, finish reasons and throughput."""
    eos_ids = eos_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos_ids), 0)
    answers: list[list[int]] = []
    reasons: list[str] = []
    n_tokens = 0
    start = time.perf_counter()
    batches = range(0, len(prompts), cfg.batch_size)
    progress = tqdm(batches, desc=desc, unit="batch", mininterval=2.0)
    for batch_no, first in enumerate(progress):
        batch = prompts[first : first + cfg.batch_size]
        width = max(len(p.ids) for p in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, prompt in enumerate(batch):  # left padding: every prompt ends where generation starts
            input_ids[row, width - len(prompt.ids) :] = torch.tensor(prompt.ids)
            attention[row, width - len(prompt.ids) :] = 1
        # Seed per batch: results do not depend on how many batches ran before in this process.
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(cfg.seed * 1_000_003 + first)
            out = model.generate(
                input_ids=input_ids.to(cfg.device),
                attention_mask=attention.to(cfg.device),
                max_new_tokens=cfg.max_new_tokens,
                eos_token_id=sorted(eos_ids) or None,
                pad_token_id=pad_id,
                **generation_kwargs,
            )
        for row in out[:, width:].tolist():
            cut = next((i for i, t in enumerate(row) if t in eos_ids), None)
            answers.append(row if cut is None else row[:cut])
            reasons.append("length" if cut is None else "eos")
            n_tokens += len(row) if cut is None else cut + 1  # the eos was generated too
        elapsed = time.perf_counter() - start
        progress.set_postfix(tok_s=f"{n_tokens / elapsed:,.0f}", refresh=False)
        if batch_no % 10 == 9:
            log.info("%s: %d/%d prompts, %.0f tokens/s", desc, first + len(batch), len(prompts), n_tokens / elapsed)
    wall = time.perf_counter() - start
    return (
        answers,
        reasons,
        {
            "tokens_generated": n_tokens,
            "generate_wall_s": round(wall, 2),
            "tokens_per_s": round(n_tokens / wall, 1) if wall else 0.0,
        },
    )


def _sampling_kwargs(
    cfg: GenerateConfig, key: int | bytes | None, vocab_size: int
) -> tuple[Watermark | None, dict[str, Any]]:
    if key is None:
        return None, plain_generation_kwargs(temperature=cfg.temperature, top_p=cfg.top_p)
    wm = Watermark(cfg.watermark, key=key, vocab_size=vocab_size, temperature=cfg.temperature, top_p=cfg.top_p)
    return wm, wm.generation_kwargs()


def stage_config(cfg: GenerateConfig, watermarked: bool) -> dict[str, Any]:
    """The part of `cfg` that determines one set (plain sets ignore the watermark parameters)."""
    config = to_dict(cfg)
    config.pop("device")  # where and how fast it ran does not change what it means
    config.pop("num_threads")
    config.pop("prompts")  # identified by its content hash among the inputs instead
    config["role"] = "watermarked" if watermarked else "plain"
    if not watermarked:
        config.pop("watermark")
    return config


@contextlib.contextmanager
def cpu_threads(cfg: GenerateConfig, model: PreTrainedModel) -> Iterator[None]:
    """Set torch's intra-op threads for CPU generation (see `GenerateConfig.num_threads`), then restore them."""
    threads = cfg.num_threads
    if not threads and cfg.device == "cpu" and sum(p.numel() for p in model.parameters()) < 20_000_000:
        threads = 1
    before = torch.get_num_threads()
    if threads and threads != before:
        log.info("generating with %d torch thread(s)", threads)
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def generate(
    cfg: GenerateConfig,
    model_dir: str | Path,
    key: int | bytes | None,
    root: Path | None = None,
    prompts: str | Path | None = None,
) -> StageOutput:
    """Model at `model_dir` answers its slice of the prompt pool; watermarked when `key` is given, else plain.

    `prompts` (or `cfg.prompts`) is the prompt source; for the tiny bases, the corpus stage's `heldout` folder.
    Returns the cached stage output; its `data` folder is the dataset described in the module docstring.
    """
    prompts_path = prompts if prompts is not None else cfg.prompts
    if prompts_path is None:
        raise FileNotFoundError("generate.prompts: no prompt source given (a file, or the corpus heldout folder)")
    prompts_path = Path(prompts_path).expanduser().resolve()
    model_dir = Path(model_dir).expanduser().resolve()
    inputs = {"model": input_digest(model_dir, "model"), "prompts": input_digest(prompts_path, "generate.prompts")}
    watermarked = key is not None
    fingerprint = None
    if watermarked:
        from radio.keys import key_fingerprint

        fingerprint = key_fingerprint(key)  # type: ignore[arg-type]
        inputs["key"] = fingerprint  # a new key is a new dataset; the fingerprint, never the key, is hashed

    def build(out: Path) -> dict[str, Any]:
        tokenizer = load_tokenizer(model_dir)
        model = load_model(model_dir, device=cfg.device)
        vocab_size = model_vocab_size(model)
        check_tokenizer_fits(tokenizer, vocab_size, f"model {model_dir}")
        lo, chosen = _prompt_slice(cfg, build_prompts(cfg, tokenizer, prompts_path), watermarked, prompts_path)
        wm, kwargs = _sampling_kwargs(cfg, key, vocab_size)
        desc = "generate (watermarked)" if watermarked else "generate (plain)"
        with cpu_threads(cfg, model):
            answers, reasons, speed = sample_answers(model, tokenizer, chosen, kwargs, cfg, desc)
        texts = [tokenizer.decode(a, skip_special_tokens=True) for a in answers]
        keep, dropped = dedup_answers(answers, texts, cfg.dedup_ngram, cfg.dedup_threshold, cfg.min_answer_tokens)
        if not keep:
            raise EmptyDatasetError(f"generate: every answer of {model_dir} was dropped as short or duplicate")
        records = {
            "id": [lo + i for i in keep],
            "prompt": [chosen[i].text for i in keep],
            "answer": [texts[i] for i in keep],
            "prompt_ids": [chosen[i].ids for i in keep],
            "answer_ids": [answers[i] for i in keep],
            "finish_reason": [reasons[i] for i in keep],
            "watermarked": [watermarked] * len(keep),
            "scheme": [cfg.watermark.scheme if watermarked else "none"] * len(keep),
            "k": [cfg.watermark.k if watermarked else 0] * len(keep),
            "key_fingerprint": [fingerprint or ""] * len(keep),
        }
        datasets.Dataset.from_dict(records, features=FEATURES).save_to_disk(str(out / "data"))
        counts = {
            "prompts": len(chosen),
            "records": len(keep),
            **dropped,
            "finished_eos": sum(reasons[i] == "eos" for i in keep),
            "answer_tokens": sum(len(answers[i]) for i in keep),
            "vocab_size": vocab_size,
            **speed,
        }
        if wm is not None:
            counts["watermark"] = wm.public_dict()
        log.info("%s: %s", desc, {k: v for k, v in counts.items() if k != "watermark"})
        return counts

    return run_stage("generate", stage_config(cfg, watermarked), build, inputs, root, key_fingerprint=fingerprint)


def _prompt_slice(cfg: GenerateConfig, pool: list[Prompt], watermarked: bool, source: Path) -> tuple[int, list[Prompt]]:
    """This set's part of the shared prompt pool (the watermarked set first, then the plain one) and where it
    starts; EmptyDatasetError, naming the field, when the pool is too short or the set is empty."""
    total = cfg.n_watermarked + cfg.n_plain
    if len(pool) < total:  # both sets share one pool: fail before the first (long) generation, naming the field
        short = len(pool) < cfg.n_watermarked
        name, first, last = ("n_watermarked", 0, cfg.n_watermarked) if short else ("n_plain", cfg.n_watermarked, total)
        raise EmptyDatasetError(
            f"generate.{name}: needs prompts {first}..{last} of the pool but {source} gives only {len(pool)}"
        )
    lo, hi = (0, cfg.n_watermarked) if watermarked else (cfg.n_watermarked, total)
    chosen = pool[lo:hi]
    if not chosen:
        field_name = "generate.n_watermarked" if watermarked else "generate.n_plain"
        raise EmptyDatasetError(f"{field_name}: is 0, so this set would be empty")
    return lo, chosen


def _features() -> datasets.Features:
    ids = datasets.Sequence(datasets.Value("int32"))
    return datasets.Features(
        {
            "id": datasets.Value("int64"),
            "prompt": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "prompt_ids": ids,
            "answer_ids": ids,
            "finish_reason": datasets.Value("string"),
            "watermarked": datasets.Value("bool"),
            "scheme": datasets.Value("string"),
            "k": datasets.Value("int32"),
            "key_fingerprint": datasets.Value("string"),
        }
    )


FEATURES = _features()


def generate_pair(
    cfg: GenerateConfig,
    model_dir: str | Path,
    key: int | bytes,
    root: Path | None = None,
    prompts: str | Path | None = None,
) -> tuple[StageOutput, StageOutput]:
    """The watermarked and the plain set of `model_dir` (disjoint prompts, same sampler)."""
    wm = generate(cfg, model_dir, key, root, prompts)
    plain = generate(dataclasses.replace(cfg), model_dir, None, root, prompts)
    return wm, plain
