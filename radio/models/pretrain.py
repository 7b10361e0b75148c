"""Plain causal-LM pre-training of the tiny bases on CPU: a short torch loop, no Trainer machinery.

Documents are concatenated (bos text eos) into one token stream; each step trains on `batch_size` random windows
of `block_size` tokens drawn with a seeded generator (nanoGPT style), AdamW with linear warm-up and cosine decay.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from radio.config import require
from radio.progress import Throttle, build_progress, format_seconds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig:
    """Optimisation settings of base-model pre-training (steps x batch_size x block_size tokens in all)."""

    steps: int = 800  # x 16 x 128 tokens: A and B in 3 min 39 s cold on 2 idle cores (train loss 3.36 / 3.47)
    batch_size: int = 16
    block_size: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_batches: int = 16
    num_threads: int = 0  # torch threads during training (restored after); 0 leaves torch's setting

    def __post_init__(self) -> None:
        require(self.steps >= 1, "pretrain.steps", f"must be >= 1, got {self.steps}")
        require(self.batch_size >= 1, "pretrain.batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.block_size >= 8, "pretrain.block_size", f"must be >= 8, got {self.block_size}")
        require(self.lr > 0, "pretrain.lr", f"must be > 0, got {self.lr}")
        require(0 <= self.min_lr_ratio <= 1, "pretrain.min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")
        require(self.warmup_steps >= 0, "pretrain.warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        require(self.eval_batches >= 0, "pretrain.eval_batches", f"must be >= 0, got {self.eval_batches}")
        require(self.num_threads >= 0, "pretrain.num_threads", f"must be >= 0, got {self.num_threads}")


def token_stream(documents: list[list[int]]) -> torch.Tensor:
    """One long 1-D tensor of token ids, documents back to back."""
    return torch.tensor([t for doc in documents for t in doc], dtype=torch.long)


def _windows(stream: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, len(stream) - block_size + 1, (batch_size,), generator=generator)
    return torch.stack([stream[s : s + block_size] for s in starts.tolist()])


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def evaluate_loss(model: PreTrainedModel, stream: torch.Tensor, block_size: int, max_batches: int = 0) -> float:
    """Mean next-token loss over consecutive non-overlapping windows of `stream` (all of them if max_batches=0)."""
    was_training = model.training
    model.eval()
    n_windows = len(stream) // block_size
    blocks = stream[: n_windows * block_size].view(n_windows, block_size)
    if max_batches:
        blocks = blocks[: max_batches * 16]
    losses = [model(input_ids=chunk, labels=chunk).loss.item() for chunk in blocks.split(16)]
    model.train(was_training)
    return float(sum(losses) / len(losses)) if losses else float("nan")


def pretrain(
    model: PreTrainedModel,
    train: torch.Tensor,
    cfg: PretrainConfig,
    seed: int,
    heldout: torch.Tensor | None = None,
    desc: str = "pretrain",
) -> dict[str, float]:
    """Train `model` in place on the token stream `train`; return losses, tokens seen and throughput."""
    if len(train) <= cfg.block_size:
        raise ValueError(f"pretrain: {len(train)} training tokens, need more than block_size={cfg.block_size}")
    threads_before = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _train(model, train, cfg, seed, heldout, desc)
    finally:
        torch.set_num_threads(threads_before)


def _train(
    model: PreTrainedModel, train: torch.Tensor, cfg: PretrainConfig, seed: int, heldout: torch.Tensor | None, desc: str
) -> dict[str, float]:
    generator = torch.Generator().manual_seed(seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]  # norms: weight decay would shrink them to zero
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    model.train()
    recent: list[float] = []
    tokens_per_step = cfg.batch_size * cfg.block_size
    start = time.perf_counter()
    progress = tqdm(range(cfg.steps), desc=desc, unit="step", mininterval=2.0)
    live, throttle = build_progress(), Throttle()  # the sweep's live view, when a stage build runs this
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg)
        batch = _windows(train, cfg.batch_size, cfg.block_size, generator)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        recent = [*recent[-19:], loss.item()]
        elapsed = time.perf_counter() - start
        rate = tokens_per_step * (step + 1) / elapsed
        progress.set_postfix(loss=f"{recent[-1]:.3f}", tok_s=f"{rate:,.0f}", refresh=False)
        if (step + 1) % 100 == 0:
            log.info("%s step %d/%d loss %.3f", desc, step + 1, cfg.steps, sum(recent) / len(recent))
        if live is not None and (throttle.due() or step + 1 == cfg.steps):
            eta = format_seconds(elapsed / (step + 1) * (cfg.steps - step - 1))
            mean = sum(recent) / len(recent)
            live(f"{desc}: step {step + 1}/{cfg.steps} loss {mean:.3f} {rate:,.0f} tok/s ETA {eta}")
    wall = time.perf_counter() - start
    stats = {
        "train_loss": round(sum(recent) / len(recent), 4),  # mean of the last 20 steps: less noisy than one batch
        "steps": cfg.steps,
        "tokens_seen": cfg.steps * tokens_per_step,
        "train_tokens": len(train),
        "tokens_per_s": round(cfg.steps * tokens_per_step / wall, 1),
        "train_wall_s": round(wall, 2),
    }
    if heldout is not None and len(heldout) >= cfg.block_size and cfg.eval_batches:
        stats["heldout_loss"] = round(evaluate_loss(model, heldout, cfg.block_size, cfg.eval_batches), 4)
    model.eval()
    log.info("%s done: %s", desc, stats)
    return stats
