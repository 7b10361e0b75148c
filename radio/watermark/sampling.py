"""Temperature and nucleus (top-p) filtering, shared by watermarked and plain generation.

The watermark must act before temperature and top-p (the paper adds delta to green logits, then samples with
temperature 0.8 and top-p 0.95), so radio's logits processors do the whole warping themselves and `generate` is
called with its own warpers switched off (`generation_kwargs`). Plain generation goes through the same code, so the
watermark is the only difference between watermarked and plain data.
"""

from __future__ import annotations

import torch


def nucleus_log_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Log-probabilities after temperature and top-p; tokens outside the nucleus get -inf.

    A token is dropped when the probability mass of strictly more likely tokens already exceeds top_p, so the most
    likely token always stays (the rule of the reference implementation).
    """
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:
        return log_probs
    sorted_log_probs, order = torch.sort(log_probs, dim=-1, descending=True)
    sorted_probs = sorted_log_probs.exp()
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    drop_sorted = mass_before > top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return log_probs.masked_fill(drop, float("-inf"))


class SamplingProcessor:
    """`transformers` logits processor for plain sampling with radio's temperature and top-p (no watermark)."""

    def __init__(self, temperature: float = 0.8, top_p: float = 0.95) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature: must be > 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p: must be in (0, 1], got {top_p}")
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Return log-probabilities after temperature and top-p, for `generate`'s multinomial sampling."""
        return nucleus_log_probs(scores, self.temperature, self.top_p).to(scores.dtype)


def sampler_generate_kwargs(processor: object) -> dict[str, object]:
    """`model.generate` keyword arguments that sample from `processor`'s output with nothing else warping it."""
    return {
        "logits_processor": [processor],
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
    }


def plain_generation_kwargs(temperature: float = 0.8, top_p: float = 0.95) -> dict[str, object]:
    """`model.generate` keyword arguments for unwatermarked sampling with the same temperature and top-p."""
    return sampler_generate_kwargs(SamplingProcessor(temperature, top_p))
