"""An independent, deliberately naive re-implementation of the three_bricks seeding, for tests and benchmarks.

One CPU generator draw per scored token, exactly as the reference detector does (DESIGN.md §2).
"""

from __future__ import annotations

import math

import torch

SALT = 35317


def reference_seed(seed: int, window: list[int]) -> int:
    """seed = (seed * 35317 + token) mod (2^64 - 1) over the window."""
    for token in window:
        seed = (seed * SALT + token) % (2**64 - 1)
    return seed


def reference_kgw_green(seed: int, window: list[int], token: int, gamma: float, vocab_size: int) -> bool:
    """Whether `token` is in the green list randperm(V)[:int(gamma V)] of this window."""
    rng = torch.Generator()
    rng.manual_seed(reference_seed(seed, window))
    greenlist = torch.randperm(vocab_size, generator=rng)[: int(gamma * vocab_size)]
    return bool((greenlist == token).any())


def reference_aaronson_score(seed: int, window: list[int], token: int, vocab_size: int) -> float:
    """-log(1 - r[token]) with r = rand(V) from the window's seed."""
    rng = torch.Generator()
    rng.manual_seed(reference_seed(seed, window))
    rs = torch.rand(vocab_size, generator=rng)
    return -math.log(1 - float(rs[token]))


def reference_aaronson_choice(
    seed: int, window: list[int], logits: torch.Tensor, temperature: float, top_p: float
) -> int:
    """The reference Aaronson sampler for one row: argmax r^(1/p) over the top-p-filtered distribution."""
    probs = torch.softmax(logits / temperature, dim=-1)
    probs_sort, probs_idx = torch.sort(probs, dim=-1, descending=True)
    probs_sum = torch.cumsum(probs_sort, dim=-1)
    mask = probs_sum - probs_sort > top_p
    probs_sort[mask] = 0.0
    probs_sort.div_(probs_sort.sum(dim=-1, keepdim=True))
    rng = torch.Generator()
    rng.manual_seed(reference_seed(seed, window))
    rs = torch.rand(logits.shape[-1], generator=rng)[probs_idx]
    return int(probs_idx[torch.argmax(torch.pow(rs, 1 / probs_sort))])
