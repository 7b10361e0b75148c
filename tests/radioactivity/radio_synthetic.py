"""Synthetic stand-ins for the fast radioactivity tests: watermarked Markov text and fake models with known behaviour.

- `watermarked_markov`: text from a uniform "model A" under a k=1 KGW watermark, sampled for many keys at once
  cheaply (one (V, V) green matrix per key).
- `CopyingModel`: never trained on anything; at position t it predicts the token that followed the last earlier
  occurrence of x_t in its context (in-context copying, an induction head), else a fixed key-independent token.
  Under H0 it is not radioactive, but without the in-sequence exclusion it looks so on watermarked text.
- `GreenOracle`: a perfectly "radioactive" model: for window x_t it predicts one fixed green token of the true key.
- `PeekingModel`: predicts the next input token itself (reading mode then scores the text like `detect_tokens`).
"""

from __future__ import annotations

import types

import numpy as np
import torch
from scipy import stats

from radio.watermark import Watermark


def watermarked_markov(wm: Watermark, n_texts: int, length: int, seed: int) -> list[list[int]]:
    """`n_texts` texts of `length` tokens: uniform logits + delta on the green list of the previous token (k=1)."""
    assert wm.k == 1
    vocab = wm.vocab_size
    green = wm.green_mask(torch.arange(vocab)[:, None]).to(torch.float64)  # (V, V): row = window
    probs = torch.softmax(wm.config.delta * green, dim=1)
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.empty((n_texts, length), dtype=torch.int64)
    tokens[:, 0] = torch.randint(0, vocab, (n_texts,), generator=gen)
    for t in range(1, length):
        tokens[:, t] = torch.multinomial(probs[tokens[:, t - 1]], 1, generator=gen)[:, 0]
    return tokens.tolist()


def _one_hot_logits(choice: torch.Tensor, vocab: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(logits=torch.nn.functional.one_hot(choice, vocab).to(torch.float32))


class CopyingModel(torch.nn.Module):
    """In-context copier (k = 1): next token = the one that followed the last earlier occurrence of x_t."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids: torch.Tensor, **_: object) -> types.SimpleNamespace:
        _, length = input_ids.shape
        positions = torch.arange(length)
        # default: a fixed function of the current token and of the position (no key involved)
        choice = (input_ids * 31 + 7 * (positions % 5)) % self.vocab
        same = input_ids[:, :, None] == input_ids[:, None, :]  # [b, t, s]: x_t == x_s
        earlier = positions[None, :] < positions[:, None]  # s < t
        has_next = positions[None, :] < length - 1
        match = same & (earlier & has_next)[None]
        last = torch.where(match, positions[None, None, :], -1).max(dim=2).values  # last s < t with x_s == x_t
        copied = torch.gather(input_ids, 1, (last + 1).clamp(max=length - 1))
        return _one_hot_logits(torch.where(last >= 0, copied, choice), self.vocab)


class GreenOracle(torch.nn.Module):
    """Predicts, for window x_t (k = 1), the first green token of `wm` (the true key): maximally radioactive."""

    def __init__(self, wm: Watermark) -> None:
        super().__init__()
        green = wm.green_mask(torch.arange(wm.vocab_size)[:, None])
        self.table = green.to(torch.int64).argmax(dim=1)
        self.vocab = wm.vocab_size

    def forward(self, input_ids: torch.Tensor, **_: object) -> types.SimpleNamespace:
        return _one_hot_logits(self.table[input_ids], self.vocab)


class PeekingModel(torch.nn.Module):
    """Predicts the next input token (the last position predicts `vocab - 1`)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids: torch.Tensor, **_: object) -> types.SimpleNamespace:
        shifted = torch.cat([input_ids[:, 1:], torch.full_like(input_ids[:, :1], self.vocab - 1)], dim=1)
        return _one_hot_logits(shifted, self.vocab)


def uniformity(pvalues: list[float] | np.ndarray, alpha: float = 0.05, discrete: bool = False) -> dict[str, float]:
    """False-positive rate at `alpha` with its exact binomial p-value, and the KS p-value against U(0, 1).

    Two-sided for (nearly) continuous p-values. `discrete`: p-values of a discrete statistic (e.g. the exact KS
    test on small samples) can only be super-uniform, P(p <= t) <= t; then both checks are one-sided and only
    reject anti-conservative p-values (too many small ones).
    """
    p = np.asarray(pvalues, dtype=float)
    n = p.size
    hits = int((p <= alpha).sum())
    side = "greater" if discrete else "two-sided"
    return {
        "n": n,
        "fpr": hits / n,
        "mean": float(p.mean()),
        "fpr_binom_p": float(stats.binomtest(hits, n, alpha, alternative=side).pvalue),
        "ks_p": float(stats.kstest(p, "uniform", alternative=side).pvalue),
    }


def looks_uniform(pvalues: list[float] | np.ndarray, level: float = 1e-3, discrete: bool = False) -> bool:
    """FPR at 0.05 inside the binomial (1 - level) interval, and KS against U(0, 1) not rejected at `level`."""
    check = uniformity(pvalues, discrete=discrete)
    return check["fpr_binom_p"] > level and check["ks_p"] > level
