"""Utility of model B: perplexity on answers given their prompts (the loss on the answer tokens only).

Used by the sweep beside the held-out corpus perplexity: on held-out answers of A, it measures how well B fits A's
answers (the point of Bob's fine-tune); on corpus text, that the fine-tune did not wreck what B knew.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


@torch.no_grad()
def answer_perplexity(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    batch_size: int = 32,
    max_len: int | None = None,
) -> float:
    """exp(mean next-token loss over every answer token, each predicted from its prompt and the answer so far).

    Rows are right-padded; the prompt and the padding carry no loss. `max_len` (default: the model's
    `max_position_embeddings`) cuts each prompt + answer from the right. NaN when no answer token is scored.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"prompts ({len(prompts)}) and answers ({len(answers)}) differ in length")
    if max_len is None:
        max_len = getattr(getattr(model, "config", None), "max_position_embeddings", None) or 10**9
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    rows = [(list(p), list(a)) for p, a in zip(prompts, answers, strict=True) if len(a)]
    for first in range(0, len(rows), batch_size):
        batch = rows[first : first + batch_size]
        ids = [(p + a)[:max_len] for p, a in batch]
        width = max(len(x) for x in ids)
        input_ids = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, ((prompt, _), seq) in enumerate(zip(batch, ids, strict=True)):
            input_ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            labels[i, len(prompt) : len(seq)] = torch.tensor(seq[len(prompt) :], dtype=torch.long)
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
        target = labels[:, 1:].to(device)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="sum"
        )
        total += float(loss)
        count += int((target != -100).sum())
    model.train(was_training)
    return math.exp(total / count) if count else float("nan")
