"""Bob's paraphrase attack: he rewrites the answers of his training split with his own base model B before training.

Pan et al., 2025 ("Can LLM Watermarks Robustly Prevent Unauthorized Knowledge Distillation?") report that
paraphrasing the distillation data removes inherited watermarks. A tiny LM cannot paraphrase semantically, so the
rewrite here is token-level, of strength s in [0, 1]: B decodes each answer left to right after its prompt, and at
each answer position, with probability s (a seeded Bernoulli per record and position), B samples its own next token
given the rewritten prefix (A's sampler: temperature and top-p, no watermark; eos excluded so that the answer keeps
A's length); otherwise A's token is kept. s = 0 leaves every answer as it was; s = 1 is B's own answer of the same
length. The uniform draws behind the Bernoullis depend on the seed and the record only, so the positions rewritten
at a smaller s are a subset of those rewritten at a larger one.

It runs as one batched `model.generate` per batch (KV cache, left padding, through `generate.sample_answers`) with
a logits processor that forces A's token on the kept (row, step) cells.

Stage output `paraphrase/<hash>/train` is a `datasets.save_to_disk` folder with the columns of the input split
(`answer_ids` and `answer` rewritten, `prompt_ids` and every flag unchanged) plus, per record:

| column           | type    | meaning                                                        |
|------------------|---------|----------------------------------------------------------------|
| rewritten_share  | float32 | share of answer positions where B sampled (s in expectation)   |
| changed_share    | float32 | share of answer positions whose token differs from A's         |

The manifest's counts record the token-weighted mean shares and, over the watermarked records, how many of A's
(window, token) pairs at k = 1 survive: in place (the token and the one before it both kept at that position) and
as distinct pairs (the pair still occurs anywhere in the rewritten split), which is what B can learn the watermark
from.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch

from radio.cache import StageOutput, run_stage
from radio.config import require, to_dict
from radio.data.generate import GenerateConfig, cpu_threads, eos_token_ids, sample_answers
from radio.data.prompts import Prompt
from radio.inputs import input_digest
from radio.models.loading import load_model, load_tokenizer, model_vocab_size
from radio.watermark.sampling import nucleus_log_probs, sampler_generate_kwargs

log = logging.getLogger(__name__)

SPLIT = "train"


@dataclass(frozen=True)
class ParaphraseConfig:
    """Strength of the rewrite, its seed, and B's sampler (A's temperature and top-p), batching and device."""

    strength: float = 0.5
    seed: int = 0
    temperature: float = 0.8
    top_p: float = 0.95
    batch_size: int = 64
    device: str = "cpu"
    num_threads: int = 0  # see `GenerateConfig.num_threads`

    def __post_init__(self) -> None:
        require(0.0 <= self.strength <= 1.0, "paraphrase.strength", f"must be in [0, 1], got {self.strength}")
        require(self.temperature > 0, "paraphrase.temperature", f"must be > 0, got {self.temperature}")
        require(0 < self.top_p <= 1, "paraphrase.top_p", f"must be in (0, 1], got {self.top_p}")
        require(self.batch_size >= 1, "paraphrase.batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.num_threads >= 0, "paraphrase.num_threads", f"must be >= 0, got {self.num_threads}")

    @classmethod
    def from_generate(cls, strength: float, cfg: GenerateConfig) -> ParaphraseConfig:
        """The rewrite at `strength` with A's sampler, seed, batch size and device from the generation config."""
        return cls(
            strength=strength,
            seed=cfg.seed,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            batch_size=cfg.batch_size,
            device=cfg.device,
            num_threads=cfg.num_threads,
        )


def rewrite_mask(record_id: int, length: int, strength: float, seed: int) -> list[bool]:
    """The answer positions of one record that B rewrites: u_t < strength for seeded uniforms u_t of the record."""
    rng = random.Random(f"paraphrase/{seed}/{record_id}")
    return [rng.random() < strength for _ in range(length)]


class ForceKeptTokens:
    """`transformers` logits processor: A's token on the kept cells of a batch, B's own sample on the others.

    `targets[row]` are A's answer ids and `rewrite[row]` the cells where B samples; step t of `generate` is answer
    position t (the prompt is left padded to `width`). A rewritten cell gets B's log-probabilities after temperature
    and top-p with eos excluded (the answer keeps A's length); a kept cell, and any step past the row's answer,
    gets a single finite log-probability (A's token, or `stop_id` to end the row).
    """

    def __init__(
        self,
        targets: Sequence[Sequence[int]],
        rewrite: Sequence[Sequence[bool]],
        width: int,
        stop_id: int,
        eos_ids: Sequence[int],
        temperature: float,
        top_p: float,
    ) -> None:
        steps = max((len(t) for t in targets), default=0)
        self.forced = torch.full((len(targets), steps + 1), stop_id, dtype=torch.long)
        self.sample = torch.zeros((len(targets), steps + 1), dtype=torch.bool)
        for row, (ids, cells) in enumerate(zip(targets, rewrite, strict=True)):
            self.forced[row, : len(ids)] = torch.tensor(list(ids), dtype=torch.long)
            self.sample[row, : len(cells)] = torch.tensor(list(cells), dtype=torch.bool)
        self.width = width
        self.eos_ids = sorted(set(eos_ids))
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Log-probabilities of the next token of every row at this step."""
        step = min(input_ids.shape[1] - self.width, self.forced.shape[1] - 1)
        sample = self.sample[:, step].to(scores.device)
        forced = self.forced[:, step].to(scores.device)
        out = torch.full_like(scores, float("-inf"), dtype=torch.float32)
        out.scatter_(1, forced[:, None], 0.0)
        if bool(sample.any()):
            logits = scores[sample].float()
            if self.eos_ids:
                logits[:, self.eos_ids] = float("-inf")  # B's token, conditioned on not ending the answer early
            out[sample] = nucleus_log_probs(logits, self.temperature, self.top_p)
        return out.to(scores.dtype)


def _batch_seed(seed: int, batch_no: int) -> int:
    # A hash, not seed * c + batch: two (seed, batch) pairs never share the sampler's stream by arithmetic accident.
    return int(hashlib.sha256(f"paraphrase/{seed}/{batch_no}".encode()).hexdigest()[:8], 16)


def rewrite_answers(
    model: Any,
    tokenizer: Any,
    prompt_ids: Sequence[Sequence[int]],
    answer_ids: Sequence[Sequence[int]],
    record_ids: Sequence[int],
    cfg: ParaphraseConfig,
) -> tuple[list[list[int]], list[list[bool]], dict[str, float]]:
    """Rewrite every answer with `model` at strength `cfg.strength`; return the new answers, the rewritten cells
    and throughput. Each new answer has exactly the length of A's."""
    eos_ids = eos_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos_ids), 0)
    stop_id = min(eos_ids) if eos_ids else pad_id  # ends a row once its answer is complete
    vocab = model_vocab_size(model)
    masks = [rewrite_mask(r, len(a), cfg.strength, cfg.seed) for r, a in zip(record_ids, answer_ids, strict=True)]
    answers: list[list[int]] = []
    start = time.perf_counter()
    n_tokens = 0
    n_batches = (len(answer_ids) + cfg.batch_size - 1) // cfg.batch_size
    for batch_no, first in enumerate(range(0, len(answer_ids), cfg.batch_size)):
        last = first + cfg.batch_size
        prompts = [Prompt(text="", ids=list(p)) for p in prompt_ids[first:last]]
        targets = [list(a) for a in answer_ids[first:last]]
        for ids in targets:
            if any(t in eos_ids or not 0 <= t < vocab for t in ids):
                raise ValueError(f"paraphrase: an answer holds eos or an id outside B's {vocab} logits")
        steps = max((len(t) for t in targets), default=0)
        if steps == 0:
            answers.extend([] for _ in targets)
            continue
        width = max(len(p.ids) for p in prompts)
        sampler = (cfg.temperature, cfg.top_p)
        processor = ForceKeptTokens(targets, masks[first:last], width, stop_id, sorted(eos_ids), *sampler)
        # sample_answers seeds each call at seed * 1_000_003 + 0: one call per batch, each with its own seed.
        gen_cfg = GenerateConfig(
            max_new_tokens=steps, batch_size=len(prompts), seed=_batch_seed(cfg.seed, batch_no), device=cfg.device
        )
        desc = f"paraphrase {batch_no + 1}/{n_batches}"
        out, _, _ = sample_answers(model, tokenizer, prompts, sampler_generate_kwargs(processor), gen_cfg, desc)
        for new, old in zip(out, targets, strict=True):
            if len(new) < len(old):
                raise RuntimeError(f"paraphrase: a rewritten answer ended after {len(new)} of {len(old)} tokens")
            answers.append(new[: len(old)])
            n_tokens += len(old)
    wall = time.perf_counter() - start
    speed = {"rewrite_wall_s": round(wall, 2), "tokens_per_s": round(n_tokens / wall, 1) if wall else 0.0}
    return answers, masks, speed


def surviving_pairs(
    prompt_ids: Sequence[Sequence[int]],
    before: Sequence[Sequence[int]],
    after: Sequence[Sequence[int]],
    scored: Sequence[bool],
    all_after: Sequence[tuple[Sequence[int], Sequence[int]]],
) -> dict[str, float | int]:
    """How many of A's (window, token) pairs at k = 1 in the `scored` records survive the rewrite.

    In place: at answer position t, the token and the token before it (the prompt's last token at t = 0) are
    both A's. Distinct: the distinct pairs of A's scored answers that still occur in `all_after` (every rewritten
    (prompt, answer) of the split, so a pair survives wherever B's training data still shows it).
    """
    total = kept = 0
    pairs_a: set[tuple[int, int]] = set()
    for prompt, old, new, use in zip(prompt_ids, before, after, scored, strict=True):
        if not use or not old:
            continue
        seq_old, seq_new = [*prompt[-1:], *old], [*prompt[-1:], *new]
        for t in range(1, len(seq_old)):
            pairs_a.add((seq_old[t - 1], seq_old[t]))
            total += 1
            kept += seq_old[t - 1] == seq_new[t - 1] and seq_old[t] == seq_new[t]
    pairs_b: set[tuple[int, int]] = set()
    for prompt, new in all_after:
        seq = [*prompt[-1:], *new]
        pairs_b.update(itertools.pairwise(seq))
    surviving = len(pairs_a & pairs_b)
    return {
        "pairs_k1": total,
        "pairs_k1_kept_in_place": kept,
        "pairs_k1_kept_in_place_share": kept / total if total else float("nan"),
        "distinct_pairs_k1": len(pairs_a),
        "distinct_pairs_k1_surviving": surviving,
        "distinct_pairs_k1_surviving_share": surviving / len(pairs_a) if pairs_a else float("nan"),
    }


def stage_config(cfg: ParaphraseConfig) -> dict[str, Any]:
    """The part of `cfg` that determines the rewritten split (not where or how fast it ran)."""
    config = to_dict(cfg)
    config.pop("device")
    config.pop("num_threads")
    return config


def paraphrase(
    cfg: ParaphraseConfig, train_dir: str | Path, model_dir: str | Path, root: Path | None = None
) -> StageOutput:
    """The cached rewrite of the training split at `train_dir` (a mix's `train`) by the model at `model_dir`.

    Keyed by the split's digest, the model's digest and `stage_config(cfg)`. The rewritten split is the stage's
    `train` folder (see the module docstring for its columns and manifest counts).
    """
    train_dir = Path(train_dir).expanduser().resolve()
    model_dir = Path(model_dir).expanduser().resolve()
    inputs = {"train": input_digest(train_dir, "paraphrase train split"), "model": input_digest(model_dir, "model")}

    def build(out: Path) -> dict[str, Any]:
        data = datasets.load_from_disk(str(train_dir))
        for column in ("prompt_ids", "answer_ids"):
            if column not in data.column_names:
                raise ValueError(f"paraphrase: {train_dir} has no column {column!r} ({data.column_names})")
        tokenizer = load_tokenizer(model_dir)
        model = load_model(model_dir, device=cfg.device)
        prompts, before = data["prompt_ids"], data["answer_ids"]
        record_ids = data["id"] if "id" in data.column_names else list(range(len(data)))
        threads = GenerateConfig(device=cfg.device, num_threads=cfg.num_threads)
        with cpu_threads(threads, model):
            after, masks, speed = rewrite_answers(model, tokenizer, prompts, before, record_ids, cfg)
        rewritten = [sum(m) for m in masks]
        changed = [sum(a != b for a, b in zip(old, new, strict=True)) for old, new in zip(before, after, strict=True)]
        lengths = [len(a) for a in before]
        features = data.features.copy()
        features["rewritten_share"] = datasets.Value("float32")
        features["changed_share"] = datasets.Value("float32")
        records = data.to_dict()
        records["answer_ids"] = after
        if "answer" in records:
            records["answer"] = [tokenizer.decode(a, skip_special_tokens=True) for a in after]
        records["rewritten_share"] = [r / n if n else 0.0 for r, n in zip(rewritten, lengths, strict=True)]
        records["changed_share"] = [c / n if n else 0.0 for c, n in zip(changed, lengths, strict=True)]
        datasets.Dataset.from_dict(records, features=features).save_to_disk(str(out / SPLIT))
        watermarked = data["watermarked"] if "watermarked" in data.column_names else [True] * len(data)
        tokens = sum(lengths)
        counts: dict[str, Any] = {
            "records": len(data),
            "answer_tokens": tokens,
            "rewritten_tokens": sum(rewritten),
            "rewritten_share": sum(rewritten) / tokens if tokens else 0.0,
            "changed_share": sum(changed) / tokens if tokens else 0.0,
            "watermarked_records": sum(bool(w) for w in watermarked),
            **surviving_pairs(prompts, before, after, watermarked, list(zip(prompts, after, strict=True))),
            **speed,
        }
        counts = {k: (None if isinstance(v, float) and v != v else v) for k, v in counts.items()}  # NaN: no JSON
        log.info("paraphrase s=%s: %s", cfg.strength, counts)
        return counts

    return run_stage("paraphrase", stage_config(cfg), build, inputs, root)
