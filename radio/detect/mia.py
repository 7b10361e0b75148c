"""Membership-inference baseline (no watermark): does B fit the suspected samples better than fresh ones?

Per sample (prompt, answer), B's per-token log-probabilities of the answer given the prompt give two scores:

- `zlib`: mean negative log-likelihood divided by the zlib-compressed length of the answer text in bytes (Carlini
  et al. 2021, "Extracting Training Data from Large Language Models": log-perplexity over zlib entropy); lower
  means better fitted than the text's own redundancy explains;
- `min_k`: mean log-probability of the `min_k_fraction` least likely answer tokens (Shi et al. 2024, Min-K% Prob);
  higher means more member-like.

`mia_test` compares the suspected set (Alice's known set; a fraction d of it is really in B's training data) with
fresh outputs of A from the same generation run that B never saw, with a two-sample Kolmogorov-Smirnov test. At
d = 1 it should detect; at d = 0 its p-values are uniform.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

MIA_SCORES = ("zlib", "min_k", "loss")


@dataclass(frozen=True)
class SampleScores:
    """Per-sample MIA scores of B, one entry per (prompt, answer); samples without an answer token are dropped."""

    loss: np.ndarray
    zlib: np.ndarray
    min_k: np.ndarray
    n_tokens: np.ndarray

    def __len__(self) -> int:
        return int(self.loss.shape[0])

    def get(self, score: str) -> np.ndarray:
        """The array of score `score` (one of MIA_SCORES)."""
        if score not in MIA_SCORES:
            raise ValueError(f"score: must be one of {MIA_SCORES}, got {score!r}")
        return getattr(self, score)

    def subset(self, index: np.ndarray) -> SampleScores:
        """The samples at `index` (an index array or boolean mask)."""
        return SampleScores(self.loss[index], self.zlib[index], self.min_k[index], self.n_tokens[index])


def zlib_length(text: str | Sequence[int]) -> int:
    """Bytes of the zlib-compressed text (token ids, when no text is given, as 4-byte little-endian integers)."""
    data = text.encode() if isinstance(text, str) else np.asarray(text, dtype="<i4").tobytes()
    return len(zlib.compress(data))


def answer_log_probs(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    *,
    batch_size: int = 16,
    pad_id: int = 0,
    amp: str | None = None,
) -> list[np.ndarray]:
    """log p_B(answer token | prompt, previous answer tokens) for every answer token, one array per sample."""
    from radio.detect.open_model import autocast_context, model_device

    if len(prompts) != len(answers):
        raise ValueError(f"prompts: {len(prompts)} prompts for {len(answers)} answers")
    device = model_device(model)
    out: list[np.ndarray] = [np.zeros(0)] * len(answers)
    order = np.argsort([len(p) + len(a) for p, a in zip(prompts, answers, strict=True)], kind="stable")
    with torch.inference_mode(), autocast_context(device, amp):
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            seqs = [list(prompts[i]) + list(answers[i]) for i in rows]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, s in enumerate(seqs):  # right padding: causal positions of real tokens are unaffected
                ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
                mask[r, : len(s)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits.float()
            targets = ids[:, 1:].to(device)
            log_probs = logits[:, :-1].gather(-1, targets[..., None])[..., 0] - torch.logsumexp(logits[:, :-1], -1)
            log_probs = log_probs.cpu().numpy()
            for r, i in enumerate(rows):
                start = max(len(prompts[i]) - 1, 0)  # position t predicts token t + 1
                stop = len(prompts[i]) + len(answers[i]) - 1
                out[i] = log_probs[r, start:stop].astype(np.float64)
    return out


def sample_scores(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    texts: Sequence[str] | None = None,
    *,
    min_k_fraction: float = 0.2,
    batch_size: int = 16,
    pad_id: int = 0,
    amp: str | None = None,
) -> SampleScores:
    """zlib-calibrated loss and min-k% log-probability of B on every (prompt, answer); see the module docstring."""
    if not 0 < min_k_fraction <= 1:
        raise ValueError(f"min_k_fraction: must be in (0, 1], got {min_k_fraction}")
    if texts is not None and len(texts) != len(answers):
        raise ValueError(f"texts: {len(texts)} texts for {len(answers)} answers")
    keep = [i for i, a in enumerate(answers) if len(a) > 0 and len(prompts[i]) + len(a) >= 2]
    if not keep:
        raise ValueError("answers: no sample with an answer token to score")
    log_probs = answer_log_probs(
        model, [prompts[i] for i in keep], [answers[i] for i in keep], batch_size=batch_size, pad_id=pad_id, amp=amp
    )
    loss = np.array([-lp.mean() for lp in log_probs])
    compressed = np.array([zlib_length(texts[i] if texts is not None else answers[i]) for i in keep], dtype=float)
    min_k = np.array([np.sort(lp)[: max(1, math.ceil(min_k_fraction * lp.size))].mean() for lp in log_probs])
    return SampleScores(loss, loss / compressed, min_k, np.array([lp.size for lp in log_probs]))


@dataclass(frozen=True)
class MIAResult:
    """H0: B scores the suspected samples like fresh samples it never saw (same distribution of `score`).

    Two-sample two-sided Kolmogorov-Smirnov test between the suspected set (d = fraction really trained on, when
    known) and the reference set of fresh non-members.
    """

    statistic: float
    pvalue: float
    log10_pvalue: float
    score: str
    n_suspected: int
    n_reference: int
    mean_suspected: float
    mean_reference: float
    d: float | None = None
    test: str = "mia"

    def to_dict(self) -> dict[str, object]:
        """JSON-able record."""
        return asdict(self)


def ks_two_sample(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(KS statistic, p-value, log10 p) of the two-sided two-sample test; radio.stats when it has one, else scipy."""
    try:
        from radio.stats import ks_2samp  # type: ignore[attr-defined]
    except ImportError:
        from scipy.stats import ks_2samp  # the exact small-sample distribution, same convention
    result = ks_2samp(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    statistic, pvalue = float(result.statistic), float(result.pvalue)
    log10_p = getattr(result, "log10_pvalue", None)
    if log10_p is None:
        log10_p = math.log10(pvalue) if pvalue > 0 else -math.inf
    return statistic, pvalue, float(log10_p)


def mia_test(
    suspected: SampleScores, reference: SampleScores, score: str = "zlib", d: float | None = None
) -> MIAResult:
    """KS test of score `score` between the suspected samples and the fresh reference samples."""
    x, y = suspected.get(score), reference.get(score)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"mia: needs at least 2 samples on each side, got {len(x)} suspected and {len(y)} reference")
    statistic, pvalue, log10_p = ks_two_sample(x, y)
    return MIAResult(statistic, pvalue, log10_p, score, len(x), len(y), float(x.mean()), float(y.mean()), d)
