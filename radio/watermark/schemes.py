"""Watermark schemes, registered by name: how uniforms bias generation, score tokens, and give p-values.

A scheme sees only uniforms from a `Hasher` (one per candidate or scored token), so hashing and scheme compose
freely. Add a scheme by subclassing `Scheme` and decorating it with `@register`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch

from radio.registry import Registry
from radio.stats.tails import log_binom_sf, log_binom_sf_mid, log_gamma_sf
from radio.watermark.hashing import Hasher
from radio.watermark.sampling import nucleus_log_probs

SCHEMES: Registry[type[Scheme]] = Registry("scheme")


def register(cls: type[Scheme]) -> type[Scheme]:
    """Class decorator adding a scheme to the registry under `cls.name`."""
    SCHEMES.add(cls.name, cls)
    return cls


class Scheme(ABC):
    """One watermark scheme: generation rule, per-token score, and the exact H0 tail of the summed score."""

    name: str

    def __init__(self, gamma: float, delta: float) -> None:
        self.gamma = gamma
        self.delta = delta

    @abstractmethod
    def sampling_logits(
        self, logits: torch.Tensor, uniforms: torch.Tensor, threshold: float, temperature: float, top_p: float
    ) -> torch.Tensor:
        """Logits to sample the next token from. `uniforms` covers the first min(width, vocab_size) columns."""

    def watermark_logits(
        self,
        logits: torch.Tensor,
        windows: torch.Tensor,
        hasher: Hasher,
        vocab_size: int,
        threshold: float,
        temperature: float,
        top_p: float,
    ) -> torch.Tensor:
        """`sampling_logits` for the (batch, k) `windows` of one generation step, hashing as little as it needs."""
        width = min(logits.shape[1], vocab_size)
        uniforms = hasher.vocab_uniforms(windows, vocab_size)[:, :width]
        return self.sampling_logits(logits, uniforms, threshold, temperature, top_p)

    @abstractmethod
    def token_scores(self, uniforms: torch.Tensor, threshold: float) -> torch.Tensor:
        """Per-token scores (float64) from the uniforms of the scored (window, token) pairs."""

    def statistic(self, scores: torch.Tensor) -> float:
        """The test statistic: the sum of the per-token scores (0.0 for none)."""
        return float(scores.sum()) if scores.numel() else 0.0

    @abstractmethod
    def log_pvalue(self, statistic: float, n_scored: int, threshold: float, mid_p: bool) -> float:
        """Natural log of P(score sum >= statistic | H0, n_scored i.i.d. scores)."""

    @abstractmethod
    def h0(self, threshold: float) -> dict[str, float | str]:
        """Parameters of the null distribution of one score, for result records."""


@register
class KGW(Scheme):
    """Kirchenbauer et al. 2023: add delta to green logits; score 1 per green token; H0: Binomial(N, gamma)."""

    name = "kgw"

    def sampling_logits(
        self, logits: torch.Tensor, uniforms: torch.Tensor, threshold: float, temperature: float, top_p: float
    ) -> torch.Tensor:
        """Add delta to green logits, then temperature and top-p; `generate` samples from the result."""
        return nucleus_log_probs(self.biased_logits(logits, uniforms < threshold), temperature, top_p)

    def watermark_logits(
        self,
        logits: torch.Tensor,
        windows: torch.Tensor,
        hasher: Hasher,
        vocab_size: int,
        threshold: float,
        temperature: float,
        top_p: float,
    ) -> torch.Tensor:
        """KGW needs only the green mask: the hasher compares integer hashes, without a (batch, V) float pass."""
        width = min(logits.shape[1], vocab_size)
        green = hasher.vocab_green(windows, vocab_size, threshold)[:, :width]
        return nucleus_log_probs(self.biased_logits(logits, green), temperature, top_p)

    def biased_logits(self, logits: torch.Tensor, green: torch.Tensor) -> torch.Tensor:
        """float32 logits + delta on the green columns (the first green.shape[1] columns; the rest unbiased).

        On CPU in numpy: one add, where torch took a clone, a cast, a multiply and an add, each a multi-threaded
        kernel whose thread wake-ups cost more than the arithmetic at generation sizes. The sums are the same
        float32 additions (logit + float32(delta), or logit + 0), so the result is identical.
        """
        width = green.shape[1]
        if logits.device.type != "cpu":
            biased = logits.float().clone()
            biased[:, :width] += self.delta * green.to(biased.dtype)
            return biased
        biased_np = logits.detach().float().numpy().copy()
        biased_np[:, :width] += green.numpy() * np.float32(self.delta)
        return torch.from_numpy(biased_np)

    def token_scores(self, uniforms: torch.Tensor, threshold: float) -> torch.Tensor:
        """1.0 for green tokens, 0.0 otherwise."""
        if uniforms.device.type == "cpu":
            # numpy: torch's multi-threaded CPU kernels cost milliseconds of thread wake-ups per call on a busy
            # machine, more than the comparison itself below ~1e6 tokens. Same values either way.
            return torch.from_numpy((uniforms.numpy() < threshold).astype(np.float64))
        return (uniforms < threshold).to(torch.float64)

    def statistic(self, scores: torch.Tensor) -> float:
        """The green count (exact: a sum of 0/1 floats below 2^53 has no rounding), counted without torch on CPU."""
        if scores.device.type == "cpu":
            return float(np.count_nonzero(scores.numpy()))
        return float(scores.sum())

    def log_pvalue(self, statistic: float, n_scored: int, threshold: float, mid_p: bool) -> float:
        """Exact binomial upper tail (or its mid-p variant) in log space."""
        tail = log_binom_sf_mid if mid_p else log_binom_sf
        return float(tail(round(statistic), n_scored, threshold))

    def h0(self, threshold: float) -> dict[str, float | str]:
        """Scores are Bernoulli(p_green) under H0."""
        return {"distribution": "binomial", "p_green": threshold}


@register
class Aaronson(Scheme):
    """Aaronson–Kirchner: pick argmax r_v^(1/p_v); score -log(1 - r); H0: the sum is Gamma(N, 1)."""

    name = "aaronson"

    def sampling_logits(
        self, logits: torch.Tensor, uniforms: torch.Tensor, threshold: float, temperature: float, top_p: float
    ) -> torch.Tensor:
        """Deterministic given the window: all mass on argmax log(r_v) / p_v over the top-p set."""
        log_probs = nucleus_log_probs(logits, temperature, top_p)
        width = uniforms.shape[1]
        # log(r)/p is increasing in r^(1/p); tokens outside the nucleus or the watermark domain never win.
        key = torch.full_like(log_probs, float("-inf"))
        inside = log_probs[:, :width].exp()
        key[:, :width] = torch.where(inside > 0, torch.log(uniforms.float()) / inside, float("-inf"))
        # A row where no candidate has r > 0 (vanishingly rare) falls back to the most likely token.
        best = torch.where(torch.isinf(key.max(dim=-1).values), log_probs.argmax(-1), key.argmax(-1))
        out = torch.full_like(log_probs, float("-inf"))
        out.scatter_(1, best[:, None], 0.0)
        return out

    def token_scores(self, uniforms: torch.Tensor, threshold: float) -> torch.Tensor:
        """-log(1 - r), Exp(1) under H0."""
        return -torch.log1p(-uniforms.to(torch.float64))

    def log_pvalue(self, statistic: float, n_scored: int, threshold: float, mid_p: bool) -> float:
        """Exact gamma upper tail in log space (continuous: mid-p equals the plain p-value)."""
        return float(log_gamma_sf(statistic, n_scored))

    def h0(self, threshold: float) -> dict[str, float | str]:
        """Scores are Exp(1) under H0."""
        return {"distribution": "gamma", "score": "exp(1)"}


LN10 = math.log(10.0)
