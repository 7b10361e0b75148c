"""Text detection: score token sequences with the tape, prompt-window exclusion and the k-gram filter phi.

Counts reported with every test:
- `n_seen`: answer tokens looked at;
- `n_eligible`: those with a full window, an id inside the watermark domain, a window outside the excluded prompt
  windows, and (when phi is given) a window in phi;
- `n_scored`: eligible tokens whose tape key (window+token, or window) is seen for the first time in the test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from radio.detect.tape import DEDUP_MODES, first_occurrence_rows, rows_in, tape_columns
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


def _flatten(name: str, items: Sequence[Sequence[int]] | None, lead: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Token-id sequences -> (`lead` zeros then all ids concatenated, as int64; length of each), no negative ids.

    Lists (the usual input: JSONL, tokenizer output) are read in one C-level pass: building one numpy array per list
    cost three times as much per token, and this conversion is a fixed share of every detection. The leading zeros
    let callers use the result as a padded buffer without another copy.
    """
    items = [] if items is None else items
    if all(type(item) is list or type(item) is tuple for item in items):
        lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        stream = itertools.chain(itertools.repeat(0, lead), itertools.chain.from_iterable(items))
        flat = np.fromiter(stream, dtype=np.int64, count=lead + int(lengths.sum()))
    else:  # arrays, tensors, other sequences: convert each
        arrays = [np.asarray(item, dtype=np.int64).reshape(-1) for item in items]
        lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
        flat = np.concatenate([np.zeros(lead, dtype=np.int64), *arrays])
    if flat.size > lead and (low := int(flat[lead:].min())) < 0:
        where = int(np.searchsorted(np.cumsum(lengths), int(np.argmin(flat[lead:])), side="right"))
        raise ValueError(f"{name}[{where}]: negative token id {low}")
    return flat, lengths


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """Start of each piece in the concatenation of pieces of `lengths`."""
    return np.cumsum(lengths) - lengths


def _first_tokens(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices starts[i] + 0 .. counts[i] - 1 for every i, concatenated (O(sum counts), no per-piece Python)."""
    total = int(counts.sum())
    return np.repeat(starts - _offsets(counts), counts) + np.arange(total, dtype=np.int64)


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
    own prompt (`own`) or in any prompt of the test (`all`). Rows without a full window (`has_window` False) hold
    arbitrary ids: never score or count them. `windows` may be a strided view (overlapping rows) of one buffer.
    """
    if prompt_exclusion not in PROMPT_EXCLUSION_MODES:
        raise ValueError(f"prompt_exclusion: unknown mode {prompt_exclusion!r}; choose {list(PROMPT_EXCLUSION_MODES)}")
    # Without prompts the answers, led by k zeros, are the whole context buffer (see below).
    padded_answers, answer_len = _flatten("sequences", sequences, lead=k if prompts is None else 0)
    answers = padded_answers[k:] if prompts is None else padded_answers
    n = answers.shape[0]
    if prompts is not None:
        prompt_flat, prompt_len = _flatten("prompts", prompts)
        if prompt_len.shape[0] != answer_len.shape[0]:
            raise ValueError(f"prompts: {prompt_len.shape[0]} prompts for {answer_len.shape[0]} sequences")
    else:
        prompt_flat, prompt_len = np.zeros(0, dtype=np.int64), np.zeros_like(answer_len)
    # One context buffer, prompt_0 answer_0 prompt_1 answer_1 ..., led by k zeros so that row p of its sliding
    # k-window view is the window of context position p - k (numpy on the hot path: torch's CPU indexing kernels are
    # several times slower for these shapes).
    answer_pos: np.ndarray | None = None  # context position of each answer token (None: answers are contiguous)
    if prompts is None:
        context = padded_answers
    else:
        context = np.zeros(k + n + prompt_flat.shape[0], dtype=np.int64)
        context_start = _offsets(prompt_len + answer_len)
        answer_pos = _first_tokens(context_start + prompt_len, answer_len)
        context[k + answer_pos] = answers
        context[k + _first_tokens(context_start, prompt_len)] = prompt_flat
    buffer = torch.from_numpy(context)
    if k == 0:
        windows = buffer.new_zeros((n, 0))
    elif answer_pos is None:
        windows = buffer.unfold(0, k, 1)[:n]  # a view: no copy of n x k ids
    else:
        windows = torch.from_numpy(np.lib.stride_tricks.sliding_window_view(context, k)[answer_pos])
    # The first max(0, k - prompt length) tokens of each answer have no full window.
    answer_start = _offsets(answer_len)
    short = np.minimum(np.maximum(k - prompt_len, 0), answer_len)
    has_window = np.ones(n, dtype=bool)
    has_window[_first_tokens(answer_start, short)] = False
    tokens = torch.from_numpy(answers)

    prompt_window = torch.from_numpy(np.zeros(n, dtype=bool))  # numpy: see `score_tokens`
    if prompt_exclusion != "none" and prompts is not None and n and not k:
        prompt_window = torch.ones(n, dtype=torch.bool)  # the empty window occurs in every prompt
    elif prompt_exclusion != "none" and prompts is not None and n:
        # k-grams of the prompts: the window of every context position at prompt index >= k (still inside it),
        # plus the last k-gram, which ends the prompt (the window of the answer's first token).
        context_start = _offsets(prompt_len + answer_len)
        gram_count = np.maximum(prompt_len - k + 1, 0)
        gram_rows = _first_tokens(context_start + k, gram_count)  # rows of the padded view
        grams = np.lib.stride_tricks.sliding_window_view(context, k)[gram_rows]
        if prompt_exclusion == "all":
            prompt_window = rows_in(windows, torch.from_numpy(grams))
        else:  # own prompt: compare (sequence id, window) rows
            seq_id = np.repeat(np.arange(answer_len.shape[0], dtype=np.int64), answer_len)
            owners = np.repeat(np.arange(prompt_len.shape[0], dtype=np.int64), gram_count)
            rows = torch.from_numpy(np.concatenate([seq_id[:, None], windows.numpy()], axis=1))
            reference = torch.from_numpy(np.concatenate([owners[:, None], grams], axis=1))
            prompt_window = rows_in(rows, reference)
    return windows, tokens, torch.from_numpy(has_window), prompt_window


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
    all_windows = windows.cpu().numpy()
    keep = eligible.cpu().numpy() & (all_tokens < wm.vocab_size)
    columns = tape_columns(all_windows, all_tokens, dedup)
    selected: np.ndarray | None  # indices of the tokens to score, in order (None: all of them)
    if columns is None:
        selected = None if keep.all() else np.flatnonzero(keep)
        n_eligible = n_seen if selected is None else int(selected.shape[0])
    else:
        n_eligible = int(np.count_nonzero(keep))
        if columns:
            selected = first_occurrence_rows(columns, keep)
        else:  # an empty key (k = 0 with dedup on windows) is one and the same window for every token
            selected = np.flatnonzero(keep)[:1]
    if selected is not None:
        all_windows, all_tokens = all_windows[selected], all_tokens[selected]
    scores = wm.score_pairs(torch.from_numpy(all_windows), torch.from_numpy(all_tokens))
    return TokenScores(scores, n_seen, n_eligible, int(scores.shape[0]))


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
    statistic = wm.statistic(scored.scores) if scored.n_scored else 0.0
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
    # numpy for element-wise work on the hot path: torch's multi-threaded CPU kernels pay milliseconds of thread
    # wake-ups per call on a busy machine, which dominated detection below ~1e6 tokens.
    eligible_np = has_window.numpy() & ~prompt_window.numpy()
    phi_rows = _phi_tensor(phi, wm.k)
    if phi_rows is not None:
        eligible_np &= rows_in(windows, phi_rows).numpy()
    return score_with_tape(wm, windows, tokens, torch.from_numpy(eligible_np), dedup)


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


def _curve_stops(n: int, n_points: int) -> np.ndarray:
    """Up to `n_points` log-spaced prefix lengths in 1..n: where the power curve and its band are read."""
    return np.unique(np.geomspace(1, n, num=min(n_points, n)).round().astype(int))


def pvalue_band(
    wm: Watermark, scores: torch.Tensor, n_points: int = 50, resamples: int = 20, seed: int = 0
) -> list[tuple[int, float, float]]:
    """(tokens, low, high): the 10th and 90th percentiles of log10 p over `resamples` bootstrap resamples of the
    scored tokens, at the same prefixes as `pvalue_curve`: how much the evidence at m tokens varies with the text
    Alice happens to hold (the band of the power curve). Empty without scored tokens or resamples."""
    n = int(scores.shape[0])
    if n == 0 or resamples <= 0:
        return []
    stops = _curve_stops(n, n_points)
    values = scores.detach().to(device="cpu", dtype=torch.float64).numpy()
    rng = np.random.default_rng(seed)
    table = np.empty((resamples, len(stops)))
    for r in range(resamples):
        cumulative = np.cumsum(values[rng.integers(0, n, size=int(stops[-1]))])
        table[r] = [wm.log_pvalue(float(cumulative[m - 1]), int(m)) / LN10 for m in stops]
    low, high = np.percentile(table, [10.0, 90.0], axis=0)
    return [(int(m), float(lo), float(hi)) for m, lo, hi in zip(stops, low, high, strict=True)]


def pvalue_curve(wm: Watermark, scores: torch.Tensor, n_points: int = 50) -> list[tuple[int, float]]:
    """(tokens scored, log10 p) at up to `n_points` log-spaced prefixes of the scored tokens, for plots."""
    n = int(scores.shape[0])
    if n == 0:
        return []
    cumulative = torch.cumsum(scores.to(torch.float64), 0)
    stops = _curve_stops(n, n_points)
    return [(int(m), wm.log_pvalue(float(cumulative[m - 1]), int(m)) / LN10) for m in stops]
