"""Pre-training loop: the loss falls, and a seed fixes the result."""

from __future__ import annotations

import torch

from radio.models import PretrainConfig, build_model, evaluate_loss, pretrain


def test_loss_falls_and_is_reproducible() -> None:
    # A repetitive stream: learnable in a few steps.
    stream = torch.tensor(list(range(3, 40)) * 40)
    cfg = PretrainConfig(steps=25, batch_size=8, block_size=32, lr=1e-2, warmup_steps=2, eval_batches=2, num_threads=1)
    model = build_model("tiny-0.5m", vocab_size=64, seed=0)
    threads = torch.get_num_threads()
    before = evaluate_loss(model, stream, 32, max_batches=2)
    stats = pretrain(model, stream, cfg, seed=0, heldout=stream)
    assert stats["heldout_loss"] < before - 1.0
    assert stats["tokens_seen"] == 25 * 8 * 32 and stats["tokens_per_s"] > 0
    assert torch.get_num_threads() == threads  # restored
    again = build_model("tiny-0.5m", vocab_size=64, seed=0)
    assert pretrain(again, stream, cfg, seed=0)["train_loss"] == stats["train_loss"]
