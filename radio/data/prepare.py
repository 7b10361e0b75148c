"""`prepare`: corpus, tokenizer and the two base models A (Alice's) and B (Bob's), each a cached stage.

A and B are the same preset pre-trained on disjoint halves of the corpus with different seeds, so that B has never
seen A's training text. For real runs, `base_a` / `base_b` name local checkpoints instead; they are checked to share
one tokenizer and logits width and used as they are.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from radio.cache import StageOutput, config_hash, default_cache_root, find_complete
from radio.config import require
from radio.data.corpus import CorpusConfig, build_corpus
from radio.data.tokenizer import TokenizerConfig, build_tokenizer
from radio.models.base import base_stage_key, build_base, build_base_in_worker
from radio.models.loading import ModelPathError, check_same_vocabulary
from radio.models.presets import PRESETS
from radio.models.pretrain import PretrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareConfig:
    """Corpus, tokenizer and base-model settings; or `base_a` and `base_b` local checkpoints for real runs."""

    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    preset: str = "tiny-1m"
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    seed_a: int = 1
    seed_b: int = 2
    base_a: Path | None = None
    base_b: Path | None = None
    # Build A and B in this many processes at once (1: one after the other, in this process). Two single-thread
    # processes use 2 cores better than one two-thread process for models this small, and degrade gracefully
    # when other jobs share the machine (a two-thread process stalls at every barrier waiting for a core).
    workers: int = 2

    def __post_init__(self) -> None:
        require(self.workers >= 1, "prepare.workers", f"must be >= 1, got {self.workers}")
        require(self.preset in PRESETS, "prepare.preset", f"unknown preset {self.preset!r}; known: {sorted(PRESETS)}")
        require(self.seed_a != self.seed_b, "prepare.seed_b", "must differ from seed_a (A and B are distinct models)")
        require(
            (self.base_a is None) == (self.base_b is None),
            "prepare.base_b" if self.base_b is None else "prepare.base_a",
            "give both base_a and base_b local checkpoint folders, or neither",
        )


@dataclass(frozen=True)
class Prepared:
    """Folders of the prepared stages and their hashes (what a sweep passes between processes)."""

    tokenizer_dir: Path
    base_a_dir: Path
    base_b_dir: Path
    corpus_dir: Path | None
    hashes: dict[str, str]
    vocab_size: int
    cached: bool


def _local_bases(cfg: PrepareConfig) -> Prepared:
    for name, path in (("prepare.base_a", cfg.base_a), ("prepare.base_b", cfg.base_b)):
        if path is None or not Path(path).expanduser().is_dir():
            raise ModelPathError(f"{name} {path}: folder not found")
    base_a, base_b = Path(cfg.base_a).expanduser().resolve(), Path(cfg.base_b).expanduser().resolve()  # type: ignore[arg-type]
    vocab_size = check_same_vocabulary(base_a, base_b)
    hashes = {"base_a": config_hash({"path": str(base_a)}), "base_b": config_hash({"path": str(base_b)})}
    return Prepared(base_a, base_a, base_b, None, hashes, vocab_size, cached=True)


def _build_bases_in_parallel(
    cfg: PrepareConfig,
    todo: dict[str, tuple[str, int]],
    corpus: StageOutput,
    tokenizer: StageOutput,
    root: Path,
) -> dict[str, StageOutput]:
    n_workers = min(cfg.workers, len(todo))
    threads = cfg.pretrain.num_threads or max(1, (os.cpu_count() or 1) // n_workers)
    log.info("building %s in %d processes, %d torch thread(s) each", sorted(todo), n_workers, threads)
    # spawn, not fork: forking a process that already initialised torch's thread pools can deadlock.
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {
            name: pool.submit(
                build_base_in_worker,
                cfg.preset,
                half,
                seed,
                cfg.pretrain,
                corpus,
                tokenizer,
                root,
                threads,
                logging.getLogger().getEffectiveLevel(),
            )
            for name, (half, seed) in todo.items()
        }
        return {name: future.result() for name, future in futures.items()}


def prepare(cfg: PrepareConfig, root: Path | None = None) -> Prepared:
    """Build (or find in the cache under `root`) the corpus, the tokenizer and bases A and B."""
    if cfg.base_a is not None:
        return _local_bases(cfg)
    root = (root or default_cache_root()).resolve()
    corpus = build_corpus(cfg.corpus, root)
    tokenizer = build_tokenizer(cfg.tokenizer, corpus, root)
    outputs: dict[str, StageOutput] = {"corpus": corpus, "tokenizer": tokenizer}
    bases = {"base_a": ("a", cfg.seed_a), "base_b": ("b", cfg.seed_b)}
    missing = []
    for name, (half, seed) in bases.items():
        digest = config_hash(*base_stage_key(cfg.preset, half, seed, cfg.pretrain, corpus, tokenizer))
        if find_complete(root, "base", digest) is None:
            missing.append(name)
    if cfg.workers > 1 and len(missing) > 1:
        outputs.update(_build_bases_in_parallel(cfg, {n: bases[n] for n in missing}, corpus, tokenizer, root))
    for name, (half, seed) in bases.items():
        if name not in outputs:
            outputs[name] = build_base(cfg.preset, half, seed, cfg.pretrain, corpus, tokenizer, root)
        counts = outputs[name].manifest["counts"]
        log.info("%s: train loss %s, held-out loss %s", name, counts.get("train_loss"), counts.get("heldout_loss"))
    vocab_a = outputs["base_a"].manifest["counts"]["vocab_size"]
    vocab_b = outputs["base_b"].manifest["counts"]["vocab_size"]
    if vocab_a != vocab_b:  # cannot happen for one tokenizer stage, but a corrupted cache must not pass silently
        raise ValueError(f"prepare: base_a has vocab_size {vocab_a} but base_b has {vocab_b}")
    return Prepared(
        tokenizer_dir=tokenizer.path,
        base_a_dir=outputs["base_a"].path,
        base_b_dir=outputs["base_b"].path,
        corpus_dir=corpus.path,
        hashes={name: out.hash for name, out in outputs.items()},
        vocab_size=int(vocab_a),
        cached=all(out.cached for out in outputs.values()),
    )
