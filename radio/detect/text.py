"""Text detection: score token sequences with the tape, prompt-window exclusion and the k-gram filter phi.

Counts reported with every test:
- `n_seen`: answer tokens looked at;
- `n_eligible`: those with a full window, an id inside the watermark domain, a window outside the excluded prompt
  windows, and (when phi is given) a window in phi;
- `n_scored`: eligible tokens whose tape key (window+token, or window) is seen for the first time in the test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from radio.detect.tape import DEDUP_MODES, column_ids, first_occurrence_of_ids, kgrams, rows_in, tape_columns
from radio.watermark import Watermark

PROMPT_EXCLUSION_MODES = ("own", "all", "none")
LN10 = math.log(10.0)


@dataclass(frozen=True)
class TokenScores:
    """Scores of the tokens a test kept, in the order they were scored, with the three counts."""

    scores: torch.Tensor
    n_seen: int
    n_eligible: int
    n_scored: int


@dataclass(frozen=True)
class DetectionResult:
    """H0: the scored tokens were not generated with this watermark key, so their scores are i.i.d. null draws.

    `statistic` is the score sum (green count for KGW, sum of -log(1-r) for Aaronson) over `n_scored` tokens;
    `log10_pvalue` is exact in log space and stays finite far below the float64 range where `pvalue` is 0.0.
    """

    statistic: float
    pvalue: float
    log10_pvalue: float
    n_seen: int
    n_eligible: int
    n_scored: int
    scheme: str
    k: int
    hashing: str
    dedup: str
    prompt_exclusion: str
    phi_size: int | None
    mid_p: bool
    key_fingerprint: str
    h0: dict[str, float | str] = field(default_factory=dict)
    test: str = "text"

    @property
    def score_mean(self) -> float:
        """Mean score per scored token (nan when nothing was scored)."""
        return self.statistic / self.n_scored if self.n_scored else float("nan")

    def to_dict(self) -> dict[str, object]:
        """JSON-able record (pvalue and log10_pvalue are always finite floats here)."""
        return {**asdict(self), "score_mean": self.score_mean}


def _as_tensor_list(name: str, items: Sequence[Sequence[int]] | None) -> list[np.ndarray] | None:
    if items is None:
        return None
    arrays = []
    for i, item in enumerate(items):
        array = np.asarray(item, dtype=np.int64).reshape(-1)
        if array.size and array.min() < 0:
            raise ValueError(f"{name}[{i}]: negative token id {int(array.min())}")
        arrays.append(array)
    return arrays


def _phi_tensor(phi: torch.Tensor | Iterable[Sequence[int]] | None, k: int) -> torch.Tensor | None:
    if phi is None:
        return None
    grams = phi if isinstance(phi, torch.Tensor) else [tuple(g) for g in phi]
    lengths = {len(g) for g in grams} if not isinstance(grams, torch.Tensor) else {grams.shape[-1]}
    if lengths - {k}:
        raise ValueError(f"phi: k-grams must have length k={k}, got lengths {sorted(lengths)}")
    rows = grams if isinstance(grams, torch.Tensor) else torch.tensor(grams, dtype=torch.int64)
    return rows.to(torch.int64).reshape(-1, k)


def collect_pairs(
    k: int,
    sequences: Sequence[Sequence[int]],
    prompts: Sequence[Sequence[int]] | None = None,
    prompt_exclusion: str = "own",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windows and tokens of every answer token, vectorised over the whole test.

    Returns (windows (n, k), tokens (n,), has_window (n,) bool, prompt_window (n,) bool), n = total answer tokens.
    Windows reach back into the answer's prompt; `prompt_window` marks tokens whose window occurs in the answer's
    own prompt (`own`) or in any prompt of the test (`all`).
    """
    if prompt_exclusion not in PROMPT_EXCLUSION_MODES:
        raise ValueError(f"prompt_exclusion: unknown mode {prompt_exclusion!r}; choose {list(PROMPT_EXCLUSION_MODES)}")
    answers = _as_tensor_list("sequences", sequences) or []
    prompt_arrays = _as_tensor_list("prompts", prompts)
    if prompt_arrays is not None and len(prompt_arrays) != len(answers):
        raise ValueError(f"prompts: {len(prompt_arrays)} prompts for {len(answers)} sequences")
    if prompt_arrays is None:
        prompt_arrays = [np.zeros(0, dtype=np.int64)] * len(answers)
    # numpy on the hot path: torch's CPU indexing kernels are several times slower for these shapes.
    prompt_len = np.fromiter((p.size for p in prompt_arrays), dtype=np.int64, count=len(prompt_arrays))
    answer_len = np.fromiter((a.size for a in answers), dtype=np.int64, count=len(answers))
    pieces = [piece for pair in zip(prompt_arrays, answers, strict=True) for piece in pair]
    flat = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    context_start = np.cumsum(prompt_len + answer_len) - (prompt_len + answer_len)
    seq_id_np = np.repeat(np.arange(len(answers)), answer_len)
    answer_offset = np.cumsum(answer_len) - answer_len
    positions = (context_start + prompt_len - answer_offset)[seq_id_np] + np.arange(seq_id_np.size)
    has_window = torch.from_numpy(positions - k >= context_start[seq_id_np])
    tokens = torch.from_numpy(flat[positions])
    window_index = np.maximum(positions[:, None] + np.arange(-k, 0)[None, :], 0)
    windows = torch.from_numpy(flat[window_index].reshape(-1, k))
    seq_id = torch.from_numpy(seq_id_np)

    prompt_window = torch.zeros(tokens.shape[0], dtype=torch.bool)
    if prompt_exclusion != "none" and prompts is not None and tokens.numel():
        grams = [kgrams(torch.from_numpy(p), k) for p in prompt_arrays]
        if prompt_exclusion == "all":
            prompt_window = rows_in(windows, torch.cat(grams))
        else:  # own prompt: compare (sequence id, window) rows
            owners = torch.repeat_interleave(torch.arange(len(grams)), torch.tensor([g.shape[0] for g in grams]))
            reference = torch.cat([owners[:, None], torch.cat(grams)], dim=1)
            prompt_window = rows_in(torch.cat([seq_id[:, None], windows], dim=1), reference)
    return windows, tokens, has_window, prompt_window


def score_with_tape(
    wm: Watermark,
    windows: torch.Tensor,
    tokens: torch.Tensor,
    eligible: torch.Tensor,
    dedup: str = "window+token",
) -> TokenScores:
    """Score the eligible (window, token) pairs that are new to the tape; the shared loop of every test.

    `eligible` must already encode full windows, prompt exclusion and phi; tokens outside the watermark domain are
    removed here. Order matters: the first occurrence of a tape key is the one scored.
    """
    if dedup not in DEDUP_MODES:
        raise ValueError(f"dedup: unknown mode {dedup!r}; choose one of {list(DEDUP_MODES)}")
    n_seen = int(tokens.shape[0])
    # numpy views of the same memory: several times faster than torch's CPU kernels for masking.
    all_tokens = tokens.cpu().numpy()
    keep = eligible.cpu().numpy() & (all_tokens < wm.vocab_size)
    everything = bool(keep.all())  # no copy when nothing was excluded
    kept_windows = windows.cpu().numpy() if everything else windows.cpu().numpy()[keep]
    kept_tokens = all_tokens if everything else all_tokens[keep]
    columns = tape_columns(kept_windows, kept_tokens, dedup)
    if columns is not None:
        # An empty key (k = 0 with dedup on windows) is one and the same window for every token.
        fresh = first_occurrence_of_ids(column_ids(columns) if columns else np.zeros(len(kept_tokens), np.int64))
        kept_windows, kept_tokens = kept_windows[fresh], kept_tokens[fresh]
    scores = wm.score_pairs(torch.from_numpy(kept_windows), torch.from_numpy(kept_tokens))
    return TokenScores(scores, n_seen, int(keep.sum()), int(scores.shape[0]))


def result_from_scores(
    wm: Watermark,
    scored: TokenScores,
    *,
    dedup: str,
    prompt_exclusion: str,
    phi_size: int | None,
    mid_p: bool = False,
    test: str = "text",
) -> DetectionResult:
    """Turn scored tokens into a `DetectionResult` with the exact log-space p-value."""
    statistic = float(scored.scores.sum()) if scored.n_scored else 0.0
    log_p = wm.log_pvalue(statistic, scored.n_scored, mid_p=mid_p)
    return DetectionResult(
        statistic=statistic,
        pvalue=math.exp(log_p),
        log10_pvalue=log_p / LN10,
        n_seen=scored.n_seen,
        n_eligible=scored.n_eligible,
        n_scored=scored.n_scored,
        scheme=wm.config.scheme,
        k=wm.k,
        hashing=wm.config.hashing,
        dedup=dedup,
        prompt_exclusion=prompt_exclusion,
        phi_size=phi_size,
        mid_p=mid_p,
        key_fingerprint=wm.fingerprint,
        h0=wm.h0(),
        test=test,
    )


def score_tokens(
    wm: Watermark,
    sequences: Sequence[Sequence[int]],
    prompts: Sequence[Sequence[int]] | None = None,
    dedup: str = "window+token",
    phi: torch.Tensor | Iterable[Sequence[int]] | None = None,
    prompt_exclusion: str = "own",
) -> TokenScores:
    """Per-token scores of `sequences` (answers to `prompts`) after exclusion, phi and the tape."""
    windows, tokens, has_window, prompt_window = collect_pairs(wm.k, sequences, prompts, prompt_exclusion)
    eligible = has_window & ~prompt_window
    phi_rows = _phi_tensor(phi, wm.k)
    if phi_rows is not None:
        eligible &= rows_in(windows, phi_rows)
    return score_with_tape(wm, windows, tokens, eligible, dedup)


def detect_tokens(
    wm: Watermark,
    sequences: Sequence[Sequence[int]],
    prompts: Sequence[Sequence[int]] | None = None,
    dedup: str = "window+token",
    phi: torch.Tensor | Iterable[Sequence[int]] | None = None,
    prompt_exclusion: str = "own",
    mid_p: bool = False,
) -> DetectionResult:
    """One pooled test over token sequences: were they written with `wm`'s key?

    `sequences` are token-id lists (answers); `prompts`, when given, are their prompts (same length): windows of
    the first answer tokens reach into the prompt, and tokens whose window occurs in the prompt are skipped
    (`prompt_exclusion='own'`, or `'all'` prompts of the test, or `'none'`). `phi` restricts scoring to tokens whose
    window is one of the given k-grams. `dedup` is the tape: `window+token` (default), `window` or `none`.
    """
    scored = score_tokens(wm, sequences, prompts, dedup, phi, prompt_exclusion)
    phi_size = None if phi is None else int(_phi_tensor(phi, wm.k).shape[0])  # type: ignore[union-attr]
    return result_from_scores(
        wm, scored, dedup=dedup, prompt_exclusion=prompt_exclusion, phi_size=phi_size, mid_p=mid_p
    )


def pvalue_curve(wm: Watermark, scores: torch.Tensor, n_points: int = 50) -> list[tuple[int, float]]:
    """(tokens scored, log10 p) at up to `n_points` log-spaced prefixes of the scored tokens, for plots."""
    n = int(scores.shape[0])
    if n == 0:
        return []
    cumulative = torch.cumsum(scores.to(torch.float64), 0)
    stops = np.unique(np.geomspace(1, n, num=min(n_points, n)).round().astype(int))
    return [(int(m), wm.log_pvalue(float(cumulative[m - 1]), int(m)) / LN10) for m in stops]
