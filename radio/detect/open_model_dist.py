"""Distribution-based open-model test ("soft" reading mode): B's probability mass on each window's green list.

H0: B was not trained on text watermarked with this key, so B's next-token distributions at positions whose window
is new in their sequence are independent of that window's green list (KGW) or uniforms (Aaronson).

Where the paper's reading test (`radio.detect.open_model`) scores one Bernoulli per deduplicated (window, B's top-1
token) pair, this test keeps B's m most likely tokens and their probabilities at every position (`read_texts(...,
top_m=m)`, the same forward pass) and scores the whole mass:

1. Eligible positions exactly as the top-1 test: the window lies inside one text, its ids are inside the watermark
   domain, it is new in its sequence (in-sequence exclusion: B's context holds no token that followed it) and,
   optionally, in phi.
2. Aggregate per distinct window w over the whole test: a_{w,v} = (sum over w's eligible positions of p_v) / d(n_w)
   for every id v among the stored top-m and inside the watermark domain, with d(n) = n (`weighting="mean"`, the
   default: every window weighs the same), 1 (`sum`) or sqrt(n) (`sqrt`). The mass outside the top m, and on ids
   outside the domain, is not scored. The weights depend on B and on Alice's text, never on the key.
3. KGW: T = sum_w sum_v a_{w,v} 1[v green for w]. Aaronson: T = sum_w sum_v a_{w,v} (-log(1 - r_{w,v})).

Why the tail is valid. Fix the weights a (they are functions of B and of the contexts only). Under H0, for windows
that are new in their sequence, the contexts that produced a_{w,.} contain no token generated under w's list, and B
never saw the key; the test then treats the keyed draws of distinct windows as independent of the weights:
- `RadioHasher`: every (window, token) gets its own uniform (a keyed splitmix64 hash of a key-independent linear
  form of the window; distinct windows collide in that form with probability about 2^-64 per pair), so the green
  indicators 1[v in G(w)] are independent Bernoulli(gamma) over all (w, v), and the Aaronson scores are independent
  Exp(1).
- `ThreeBricksHasher`: one `torch.Generator` seed per window; KGW's green list is the first int(gamma V) entries of a
  uniform random permutation, so within a window the indicators are those of a uniform subset of fixed size:
  negatively associated (Joag-Dev & Proschan 1983), each Bernoulli(int(gamma V) / V); Aaronson's r is `rand(V)`,
  independent uniforms. Distinct windows can share a seed (the seed is a polynomial in the window's ids modulo
  2^64 - 1, injective only while every id is below 35,317 and k <= 4): windows are grouped by their seed before
  aggregation, so a list is never scored twice.
Because every a_{w,v} >= 0, E[e^{lambda T}] <= prod_{w,v} E[e^{lambda a_{w,v} X_{w,v}}] in both cases (equality under
independence, <= under negative association), and Markov's inequality gives the Chernoff bound

    log P(T >= t) <= inf_{lambda > 0} [ -lambda t + sum_{w,v} log(1 - gamma + gamma e^{lambda a_{w,v}}) ]   (KGW)
    log P(T >= t) <= inf_{0 < lambda < 1/max a} [ -lambda t - sum_{w,v} log(1 - lambda a_{w,v}) ]        (Aaronson)

computed in log space by `radio.stats.chernoff` (the weights binned upwards: still an upper bound). The reported
p-value is that bound: valid far in the tail, conservative near 0.05. No normal approximation is used.

Reference-calibrated weights (setting `open-ref`, `reference=`). Most of B's mass on a green list is B's own
language, the same whatever the key; what fine-tuning on watermarked text adds is a tilt of B's probabilities
towards the tokens A's lists made frequent. With a reference model R that never saw the key (Alice's A, whose
watermark is applied when it samples, or Bob's base model; `radio.detect.reference`), each position's weight is B's
excess over R, max(p_B(v) - p_R(v), 0) for B's top-m ids v, aggregated per window as above (`weighting="sum"`
by default there). The weights remain functions of B, R and the contexts, never of the key, so the argument above
and its bound hold unchanged; R only removes the key-independent part of the weights. Signed weights
(`excess="signed"`: p_B(v) - p_R(v) of either sign, so that the tokens B moved away from also count: under H1 they
are red more often than gamma) keep the argument where the draws are independent (RadioHasher; three_bricks'
Aaronson uniforms): the MGF of the sum is then the product whatever the signs, and the Chernoff bound of
`radio.stats.chernoff` with signed weights applies. three_bricks' KGW lists (negatively associated) bound only
weights of one sign: refused there. On the tiny default (rho = 0.1, unsupervised, measured under two keys):
A as R -9.2 and -4.1 against -2.2 and -3.2 for the top-1 test; under the second key Bob's base as R -4.4, signed
-5.8 (README, open-ref).

Counts: `n_seen` tokens read, `n_eligible` eligible positions, `n_scored` distinct windows (lists) scored; the
result's `h0` also gives the number of (window, token) terms, the scored mass and the mean of T under H0.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import torch

from radio.detect.open_model import ReadingPass, eligible_positions
from radio.detect.phi import Phi
from radio.detect.result import RadioactivityResult
from radio.detect.tape import row_ids
from radio.detect.text import DetectionResult
from radio.stats.chernoff import WeightProfile, chernoff_log_sf, prefix_profiles
from radio.watermark import Watermark
from radio.watermark.hashing import ThreeBricksHasher

WEIGHTINGS = ("mean", "sum", "sqrt")
SETTING = "open-dist"
REFERENCE_SETTING = "open-ref"
# Which null draws each scheme's per-token score is under H0 (KGW: green indicator; Aaronson: -log(1 - r)).
NULL_DRAWS = {"kgw": "bernoulli", "aaronson": "exponential"}
LN10 = math.log(10.0)
WEIGHTS_EXCESS = "excess max(p_B - p_R, 0)"
WEIGHTS_SIGNED = "signed difference p_B - p_R (independent draws)"
_THREE_BRICKS_MOD = 2**64 - 1


def _list_ids(hashing: str, windows: np.ndarray) -> np.ndarray:
    """An int64 id per window row, equal when two windows get the same keyed list (for every key).

    RadioHasher: the window itself. ThreeBricksHasher: its seed is key * S^k + c(w) (mod 2^64 - 1) with c(w) the
    fold of the ids, so two windows share a list for every key when their c(w) agree; c is injective (and the
    window itself serves) while every id is below S and S^k < 2^64 - 1.
    """
    k = windows.shape[1]
    salt = ThreeBricksHasher.SALT
    if hashing != "three_bricks" or not windows.size or (int(windows.max()) < salt and salt**k < _THREE_BRICKS_MOD):
        return row_ids(windows)
    folded = []
    for row in windows.tolist():
        value = 0
        for token in row:
            value = (value * salt + token) % _THREE_BRICKS_MOD
        folded.append(value)
    return pd.factorize(np.array(folded, dtype=np.uint64))[0].astype(np.int64)


@dataclass(frozen=True)
class WindowMass:
    """B's top-m mass aggregated per distinct eligible window (key-independent: one per phi / exclusion choice).

    `windows` (W, k): one representative window per distinct list, in order of first eligible occurrence;
    `positions` (W,): eligible positions per list. Entries (E,), sorted by list: `entry_list` (index into
    `windows`), `entry_token`, `weight` (a_{w,v}). `mass_covered`: mean over eligible positions of the stored
    in-domain probability (what the top-m keep of B's distribution).
    """

    windows: np.ndarray
    positions: np.ndarray
    entry_list: np.ndarray
    entry_token: np.ndarray
    weight: np.ndarray
    n_seen: int
    n_eligible: int
    top_m: int
    weighting: str
    mass_covered: float
    reference: bool = False
    signed: bool = False  # weights p_B - p_R of either sign (independent draws only)

    @property
    def n_lists(self) -> int:
        """Distinct windows (green lists) scored."""
        return int(self.windows.shape[0])

    @cached_property
    def entry_windows(self) -> torch.Tensor:
        """(E, k) int64: the window of every entry (key-independent, built once for all keys)."""
        return torch.from_numpy(np.ascontiguousarray(self.windows[self.entry_list]))

    @cached_property
    def profile(self) -> WeightProfile:
        """The binned weights of the whole test (for the Chernoff bound)."""
        return WeightProfile.of(self.weight, signed=self.signed)

    def curve_stops(self, n_points: int) -> tuple[np.ndarray, list[WeightProfile]]:
        """Up to `n_points` log-spaced prefixes (in lists), their entry ends and weight profiles (cached)."""
        cache = self.__dict__.setdefault("_curve", {})
        if n_points not in cache:
            if self.n_lists == 0 or n_points <= 0:
                cache[n_points] = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [])
            else:
                lists = np.unique(np.geomspace(1, self.n_lists, num=min(n_points, self.n_lists)).round().astype(int))
                ends = np.searchsorted(self.entry_list, lists, side="left")
                cache[n_points] = (lists, ends, prefix_profiles(self.weight, ends, signed=self.signed))
        lists, ends, profiles = cache[n_points]
        return np.stack([lists, ends]) if len(lists) else np.zeros((2, 0), dtype=np.int64), profiles

    def describe(self) -> dict[str, object]:
        """JSON-able summary (no token ids)."""
        return {
            "top_m": self.top_m,
            "weighting": self.weighting,
            "n_terms": int(self.weight.shape[0]),
            "mass_scored": float(self.weight.sum()),
            "mass_covered": round(self.mass_covered, 6),
            "reference": self.reference,
            "signed": self.signed,
        }


def window_mass(
    wm: Watermark,
    reading: ReadingPass,
    *,
    phi: Phi | None = None,
    in_sequence_exclusion: bool = True,
    weighting: str = "mean",
    reference: torch.Tensor | None = None,
    signed: bool = False,
) -> WindowMass:
    """Aggregate B's stored top-m probabilities of the eligible positions per distinct window (see the module).

    `reference` (n, m): a reference model's probabilities of the same ids at the same positions
    (`radio.detect.reference.reference_probs`); the weights are then B's excess over it, max(p_B - p_R, 0), or
    with `signed` the difference p_B - p_R of either sign (valid for independent null draws only: not for KGW
    lists of three_bricks hashing, a fixed-size subset per window). Uses only the public parameters of `wm`
    (vocabulary domain, k, hashing), never its key.
    """
    if signed and reference is None:
        raise ValueError("signed: signed weights are B's difference to a reference model; give `reference`")
    if signed and wm.config.hashing == "three_bricks" and _draws(wm) == "bernoulli":
        raise ValueError(
            "signed: three_bricks KGW lists are fixed-size subsets (negatively associated), whose bound holds for "
            "weights of one sign only; use hashing radio or unsigned weights"
        )
    if reading.k != wm.k:
        raise ValueError(f"reading pass has windows of k={reading.k} but the watermark has k={wm.k}")
    if reading.top_probs is None or reading.top_ids is None:
        raise ValueError("reading pass: read with top_m > 0 (read_texts(..., top_m=m)) for the distribution test")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting: must be one of {list(WEIGHTINGS)}, got {weighting!r}")
    if reference is not None and tuple(reference.shape) != tuple(reading.top_probs.shape):
        raise ValueError(f"reference: shape {tuple(reference.shape)}, B's top-m {tuple(reading.top_probs.shape)}")
    eligible = eligible_positions(wm, reading, phi, in_sequence_exclusion).numpy()  # the top-1 test's rule
    where = np.flatnonzero(eligible)
    windows = reading.windows.numpy()[where]
    lists = pd.factorize(_list_ids(wm.config.hashing, windows))[0].astype(np.int64)
    # lists are numbered in order of first eligible occurrence; that occurrence's window represents the list
    _, first, positions = np.unique(lists, return_index=True, return_counts=True)
    n_lists = int(first.size)
    ids = reading.top_ids.numpy()[where].astype(np.int64)
    probs = reading.top_probs.numpy()[where].astype(np.float64)
    keep = (ids < wm.vocab_size) & (probs > 0.0)
    mass_covered = float(np.where(keep, probs, 0.0).sum() / max(where.size, 1))
    if reference is not None:  # B's excess over the reference (a weight of 0 adds nothing to T)
        probs = probs - reference.numpy()[where].astype(np.float64)
        if not signed:
            probs = np.maximum(probs, 0.0)
        keep &= probs != 0.0
    entry_key = (lists[:, None] * wm.vocab_size + ids)[keep]
    codes, uniques = pd.factorize(entry_key)
    mass = np.bincount(codes, weights=probs[keep], minlength=uniques.size)
    order = np.argsort(uniques, kind="stable")  # by list (list-major keys), tokens ascending inside each list
    uniques, mass = uniques[order], mass[order]
    entry_list = uniques // wm.vocab_size
    divisor = {"mean": positions, "sum": np.ones_like(positions), "sqrt": np.sqrt(positions)}[weighting]
    return WindowMass(
        windows=windows[first] if n_lists else np.zeros((0, wm.k), dtype=np.int64),
        positions=positions,
        entry_list=entry_list,
        entry_token=uniques % wm.vocab_size,
        weight=mass / divisor[entry_list],
        n_seen=reading.n_tokens,
        n_eligible=int(where.size),
        top_m=reading.top_m,
        weighting=weighting,
        mass_covered=mass_covered,
        reference=reference is not None,
        signed=signed,
    )


def keyed_scores(wm: Watermark, mass: WindowMass) -> np.ndarray:
    """Per-entry null draws X_{w,v} under `wm`'s key: green indicator (KGW) or -log(1 - r) (Aaronson)."""
    if mass.weight.size == 0:
        return np.zeros(0)
    return wm.score_pairs(mass.entry_windows, torch.from_numpy(mass.entry_token)).numpy()


def _draws(wm: Watermark) -> str:
    if wm.config.scheme not in NULL_DRAWS:
        raise ValueError(f"scheme {wm.config.scheme!r}: no distribution test (known: {sorted(NULL_DRAWS)})")
    return NULL_DRAWS[wm.config.scheme]


def open_model_dist_test(
    wm: Watermark,
    reading: ReadingPass,
    *,
    phi: Phi | None = None,
    in_sequence_exclusion: bool = True,
    weighting: str = "mean",
    mass: WindowMass | None = None,
    supervised: bool = False,
    control: str = "none",
    curve_points: int = 20,
    info: dict[str, object] | None = None,
) -> RadioactivityResult:
    """One pooled distribution-based open-model test of `reading` under `wm`; see the module docstring.

    `mass`: the key-independent aggregation from `window_mass` (pass it to reuse it across keys; it must come from
    the same reading, phi, exclusion and weighting). A mass built with a reference makes this the `open-ref` test.
    """
    start = time.perf_counter()
    draws = _draws(wm)
    if mass is None:
        mass = window_mass(wm, reading, phi=phi, in_sequence_exclusion=in_sequence_exclusion, weighting=weighting)
    setting = REFERENCE_SETTING if mass.reference else SETTING
    p = wm.threshold if draws == "bernoulli" else 0.0
    scores = keyed_scores(wm, mass)
    contributions = mass.weight * scores
    statistic = float(contributions.sum())
    log_p, lam = chernoff_log_sf(statistic, mass.profile, draws, p)
    profile = mass.profile
    mean, variance = profile.mean(draws, p), profile.variance(draws, p)
    h0: dict[str, float | str] = {
        "distribution": "KGW: weighted sum of Bernoulli(p_green) green indicators"
        if draws == "bernoulli"
        else "Aaronson: weighted sum of Exp(1) scores",
        "bound": "Chernoff bound inf_lambda exp(-lambda t) prod E[exp(lambda a X)] (independent or negatively "
        "associated draws; weights binned upwards)",
        "mean": mean,
        "sd": math.sqrt(variance),
        "n_terms": float(mass.weight.size),
        "mass_scored": profile.total,
        "lambda": lam,
        **({"p_green": p} if draws == "bernoulli" else {}),
        **(
            {"weights": f"B's {WEIGHTS_SIGNED if mass.signed else WEIGHTS_EXCESS} over a key-free reference model"}
            if mass.reference
            else {}
        ),
    }
    detection = DetectionResult(
        statistic=statistic,
        pvalue=math.exp(log_p),
        log10_pvalue=log_p / LN10,
        n_seen=mass.n_seen,
        n_eligible=mass.n_eligible,
        n_scored=mass.n_lists,
        scheme=wm.config.scheme,
        k=wm.k,
        hashing=wm.config.hashing,
        dedup="window",
        prompt_exclusion="in-sequence" if in_sequence_exclusion else "none",
        phi_size=None if phi is None else phi.size,
        mid_p=False,
        key_fingerprint=wm.fingerprint,
        h0=h0,
        test=setting,
    )
    stops, profiles = mass.curve_stops(curve_points)
    cumulative = np.concatenate([[0.0], np.cumsum(contributions)]) if profiles else np.zeros(1)
    curve = [
        (int(n), chernoff_log_sf(float(cumulative[end]), prof, draws, p)[0] / LN10)
        for n, end, prof in zip(stops[0], stops[1], profiles, strict=True)
    ]
    wall = reading.wall_s + time.perf_counter() - start
    return RadioactivityResult(
        detection=detection,
        setting=setting,
        supervised=supervised,
        control=control,
        in_sequence_exclusion=in_sequence_exclusion,
        phi=None if phi is None else phi.describe(),
        tokens_per_s=reading.n_tokens / wall if wall > 0 else float("nan"),
        wall_s=wall,
        curve=curve,
        info={**reading.describe(), **mass.describe(), **(info or {})},
    )
