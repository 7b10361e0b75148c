"""Chernoff upper bounds, in log space, on the tail of a weighted sum of independent null draws.

H0: T = sum_i a_i X_i with fixed weights a_i >= 0 and X_i independent Bernoulli(p) (or negatively associated
Bernoulli(p) indicators, such as the members of a uniformly random subset of fixed size), or X_i independent Exp(1).
Signed weights (`signed=True`) are allowed for independent draws only: the product of MGFs is then exact whatever
the signs, while negative association bounds the MGF of a sum only for weights of one sign.

The bound: for every lambda > 0, Markov's inequality on e^{lambda T} gives

    log P(T >= t) <= -lambda t + sum_i log E[e^{lambda a_i X_i}]   (a product of MGFs under independence)

with log E[e^{lambda a X}] = log(1 - p + p e^{lambda a}) (Bernoulli) or -log(1 - lambda a), lambda a < 1 (Exp(1)).
Negatively associated indicators (Joag-Dev & Proschan 1983: the indicators of a uniform random subset of fixed size)
satisfy E[prod_i f_i(X_i)] <= prod_i E[f_i(X_i)] for non-decreasing non-negative f_i, and e^{lambda a_i x} is one
for a_i >= 0, lambda > 0: the same bound holds. The right-hand side is convex in lambda; its infimum is the
reported value. The bound holds for every lambda, so an inexact minimiser still gives a valid (looser) bound.

Weights are summarised once in a `WeightProfile` (key-independent, reused for every key). Each log-MGF term is
split as lambda a E[X] + psi(lambda a), with psi >= 0 convex, 0 at 0, so increasing in |x| on either side of 0
(psi(x) = log(1 - p + p e^x) - p x, or -log(1 - x) - x): the linear part uses the exact sum of the weights, and psi
uses the outer edge of each weight's log-spaced bin of |a| (ratio 1 + `rel_width`), with the weight's sign. That is
an upper bound of the exact log-MGF, so the Chernoff bound stays valid; with a relative width of 1e-3 the exponent
grows by about 2e-3 of its variance term, and the mean not at all. Weights below `floor` times the largest |a|
share the lowest bin (again its outer edge: still an upper bound).
Weights that are all equal fall into one bin whose edge is their value, so the bound is then the classical
Chernoff bound of the binomial / gamma tail.

The Chernoff bound is conservative: at p-values near 0.05 it is several times too large (FPR below nominal), and in
the far tail it exceeds the exact tail by a polynomial factor (about sigma * lambda * sqrt(2 pi)), a fraction of a
decade at 1e-5. It never uses a normal approximation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radio.stats.results import TestResult, pvalue_from_log10

__all__ = [
    "NULL_DRAWS",
    "ChernoffTailResult",
    "WeightProfile",
    "chernoff_log_sf",
    "chernoff_tail_test",
    "prefix_profiles",
]

LN10 = math.log(10.0)
NULL_DRAWS = ("bernoulli", "exponential")
_BISECTIONS = 200  # Newton/bisection steps at most (Newton converges in about ten)


@dataclass(frozen=True)
class WeightProfile:
    """Weights, binned for the Chernoff bound: bin outer edges, counts, and the exact moments.

    `edges[j]` is the outer edge of bin j (its sign the weights'; |a| <= |edge|), `counts[j]` how many weights it
    holds; `total` = sum a, `total_sq` = sum a^2, `largest` = max a (0 when no weight is positive), `n` = number of
    non-zero weights (zero weights are dropped: they add nothing to T nor to the bound), `positive_total` = the sum
    of the positive weights (the largest value a Bernoulli T can take).
    """

    edges: NDArray[np.float64]
    counts: NDArray[np.float64]
    total: float
    total_sq: float
    largest: float
    n: int
    positive_total: float = 0.0

    @classmethod
    def of(
        cls, weights: ArrayLike, rel_width: float = 1e-3, floor: float = 1e-12, *, signed: bool = False
    ) -> WeightProfile:
        """Bin `weights` (any shape; finite, >= 0 unless `signed`) on a log grid of |a| anchored at its maximum."""
        a = _checked(weights, signed)
        return prefix_profiles(a, [a.size], rel_width, floor, signed=signed)[0]

    def mean(self, draws: str, p: float = 0.0) -> float:
        """E[T] under H0 (exact, from the unbinned weights)."""
        return self.total * (p if draws == "bernoulli" else 1.0)

    def variance(self, draws: str, p: float = 0.0) -> float:
        """Var[T] under independent draws (exact; for a fixed-size subset the true variance is a little smaller)."""
        return self.total_sq * (p * (1.0 - p) if draws == "bernoulli" else 1.0)


def _checked(weights: ArrayLike, signed: bool = False) -> NDArray[np.float64]:
    a = np.asarray(weights, dtype=np.float64).reshape(-1)
    if a.size and not np.all(np.isfinite(a)):
        raise ValueError("weights: must be finite")
    if a.size and not signed and a.min() < 0.0:
        raise ValueError("weights: must be >= 0 (signed=True allows negative weights, for independent draws only)")
    return a


def prefix_profiles(
    weights: ArrayLike, stops: ArrayLike, rel_width: float = 1e-3, floor: float = 1e-12, *, signed: bool = False
) -> list[WeightProfile]:
    """`WeightProfile` of weights[:s] for every s in `stops` (increasing), on one grid, in one pass over the weights.

    The grid is anchored at the largest weight overall, so a prefix's top edge may exceed its own largest weight:
    the bound stays valid (edges are upper bounds), and looser by less than one bin width.
    """
    if not 0.0 < rel_width < 1.0:
        raise ValueError(f"rel_width: must be in (0, 1), got {rel_width}")
    a = _checked(weights, signed)
    ends = np.asarray(stops, dtype=np.int64).reshape(-1)
    if ends.size and (np.any(np.diff(ends) < 0) or ends[0] < 0 or ends[-1] > a.size):
        raise ValueError(f"stops: must increase within 0..{a.size}")
    if ends.size == 0:
        return []
    nonzero = a != 0.0
    if not nonzero.any():
        return [WeightProfile(np.zeros(0), np.zeros(0), 0.0, 0.0, 0.0, 0) for _ in ends]
    magnitude = np.abs(a[nonzero])
    anchor = float(magnitude.max())
    step = math.log1p(rel_width)
    n_bins = math.ceil(math.log(1.0 / floor) / step) + 1
    with np.errstate(divide="ignore"):
        depth = np.log(anchor / magnitude) / step  # bin j holds |a| in (anchor (1+w)^-(j+1), anchor (1+w)^-j]
    # a bin per (depth, sign): code 2 j for positive weights, 2 j + 1 for negative ones
    code = 2 * np.minimum(np.floor(depth).astype(np.int64), n_bins - 1) + (a[nonzero] < 0.0)
    used, dense = np.unique(code, return_inverse=True)
    # one bincount over (segment between stops, bin); cumulative over segments gives every prefix
    segment = np.searchsorted(ends, np.flatnonzero(nonzero), side="right")
    table = np.bincount(segment * used.size + dense, minlength=(ends.size + 1) * used.size)
    counts = np.cumsum(table.reshape(ends.size + 1, used.size)[:-1], axis=0).astype(np.float64)
    outer = anchor * np.exp(-step * (used // 2).astype(np.float64)) * (1.0 + 1e-12)
    outer[used // 2 == 0] = anchor  # the top edge is exactly the largest |a|
    edges = np.where(used % 2 == 1, -outer, outer)
    cum = np.concatenate([[0.0], np.cumsum(a)])
    cum_sq = np.concatenate([[0.0], np.cumsum(np.square(a))])
    cum_n = np.concatenate([[0], np.cumsum(nonzero)])
    cum_max = np.concatenate([[0.0], np.maximum.accumulate(np.maximum(a, 0.0))])
    cum_pos = np.concatenate([[0.0], np.cumsum(np.maximum(a, 0.0))])
    out = []
    for row, end in zip(counts, ends, strict=True):
        keep = row > 0
        out.append(
            WeightProfile(
                edges[keep],
                row[keep],
                float(cum[end]),
                float(cum_sq[end]),
                float(cum_max[end]),
                int(cum_n[end]),
                float(cum_pos[end]),
            )
        )
    return out


def _psi_bernoulli(x: NDArray[np.float64], p: float) -> NDArray[np.float64]:
    """log(1 - p + p e^x) - p x (>= 0, increasing in |x|); a series where the difference would cancel.

    For large x (a statistic near the largest value T can take puts the minimiser far out) the log-sum-exp form,
    which does not overflow.
    """
    with np.errstate(over="ignore"):
        moderate = np.log1p(p * np.expm1(np.minimum(x, 30.0))) - p * x
    large = np.logaddexp(math.log1p(-p), math.log(p) + x) - p * x
    exact = np.where(x < 30.0, moderate, large)
    q = p * (1.0 - p)
    series = x * x * (q / 2.0 + x * (q * (1.0 - 2.0 * p) / 6.0 + x * q * (1.0 - 6.0 * q) / 24.0))
    return np.where(np.abs(x) < 1e-4, series, exact)


def _psi_exponential(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """-log(1 - x) - x for x < 1 (>= 0, increasing in |x|); a series where the difference would cancel."""
    with np.errstate(divide="ignore"):
        exact = -np.log1p(-x) - x
    series = x * x * (0.5 + x * (1.0 / 3.0 + x * (0.25 + x / 5.0)))
    return np.where(np.abs(x) < 1e-4, series, exact)


# The log-MGF sum splits into its linear part, lambda * mean, computed from the exact sum of the weights, and a
# remainder psi(lambda a) >= 0 that increases with a; only the remainder uses the binned (upper-edge) weights, so the
# binning adds about 2 * rel_width of the variance term to the exponent and nothing to the mean.
def _log_mgf_bernoulli(lam: float, profile: WeightProfile, p: float) -> float:
    """lam p sum(a) + sum_j c_j psi(lam e_j): an upper bound of sum_i log(1 - p + p e^{lam a_i})."""
    return lam * p * profile.total + float(np.dot(profile.counts, _psi_bernoulli(lam * profile.edges, p)))


def _dlog_mgf_bernoulli(lam: float, profile: WeightProfile, p: float) -> float:
    """d/dlam of `_log_mgf_bernoulli`: p sum(a) + sum_j c_j e_j (sigmoid(lam e_j + logit p) - p)."""
    z = lam * profile.edges + math.log(p) - math.log1p(-p)
    excess = 0.5 * (1.0 + np.tanh(0.5 * z)) - p
    return p * profile.total + float(np.dot(profile.counts * profile.edges, excess))


def _d2log_mgf_bernoulli(lam: float, profile: WeightProfile, p: float) -> float:
    z = lam * profile.edges + math.log(p) - math.log1p(-p)
    sig = 0.5 * (1.0 + np.tanh(0.5 * z))
    return float(np.dot(profile.counts * np.square(profile.edges), sig * (1.0 - sig)))


def _log_mgf_exponential(lam: float, profile: WeightProfile) -> float:
    """lam sum(a) + sum_j c_j psi(lam e_j) for lam e_max < 1: an upper bound of -sum_i log(1 - lam a_i)."""
    return lam * profile.total + float(np.dot(profile.counts, _psi_exponential(lam * profile.edges)))


def _dlog_mgf_exponential(lam: float, profile: WeightProfile) -> float:
    x = lam * profile.edges
    return profile.total + float(np.dot(profile.counts * profile.edges, x / (1.0 - x)))


def _d2log_mgf_exponential(lam: float, profile: WeightProfile) -> float:
    return float(np.dot(profile.counts, np.square(profile.edges / (1.0 - lam * profile.edges))))


def chernoff_log_sf(statistic: float, profile: WeightProfile, draws: str, p: float = 0.0) -> tuple[float, float]:
    """(natural log of the Chernoff bound on P(T >= statistic), its minimising lambda) under H0; see the module.

    `draws`: "bernoulli" (X_i ~ Bernoulli(p), independent or negatively associated) or "exponential" (Exp(1)).
    Returns (0.0, 0.0) when the statistic does not exceed the mean; -inf when it exceeds the largest value T can
    take (sum of weights, Bernoulli), which has probability zero.
    """
    if draws not in NULL_DRAWS:
        raise ValueError(f"draws: must be one of {list(NULL_DRAWS)}, got {draws!r}")
    if draws == "bernoulli" and not 0.0 < p < 1.0:
        raise ValueError(f"p: must be in (0, 1), got {p}")
    if not math.isfinite(statistic):
        raise ValueError(f"statistic: must be finite, got {statistic}")
    if profile.n == 0 or statistic <= profile.mean(draws, p):
        return 0.0, 0.0
    positive = profile.edges > 0.0
    top = float(profile.edges[positive].max()) if positive.any() else 0.0
    low, high = 0.0, 1.0 / float(np.abs(profile.edges).max())
    if draws == "bernoulli":
        if statistic > profile.positive_total * (1.0 + 1e-12) + 1e-300:
            return -math.inf, math.inf
        # the slope at lambda -> inf: p sum(a) + (1 - p) sum_{e > 0} c e - p sum_{e < 0} c e >= the largest value T
        # can take; there every positive weight's term tends to log p + lam a and every negative one's to
        # log(1 - p), so the bound tends to n+ log p + n- log(1 - p) when the statistic reaches that slope.
        counts, edges = profile.counts, profile.edges
        binned_total = p * profile.total + float(np.dot(counts, np.where(positive, (1.0 - p) * edges, -p * edges)))
        if statistic >= binned_total:
            n_pos, n_neg = float(counts[positive].sum()), float(counts[~positive].sum())
            return n_pos * math.log(p) + n_neg * math.log1p(-p), math.inf
        slope = lambda lam: _dlog_mgf_bernoulli(lam, profile, p) - statistic  # noqa: E731
        curvature = lambda lam: _d2log_mgf_bernoulli(lam, profile, p)  # noqa: E731
        value = lambda lam: -lam * statistic + _log_mgf_bernoulli(lam, profile, p)  # noqa: E731
    else:
        if top == 0.0 and statistic > 0.0:  # no positive weight: T <= 0
            return -math.inf, math.inf
        slope = lambda lam: _dlog_mgf_exponential(lam, profile) - statistic  # noqa: E731
        curvature = lambda lam: _d2log_mgf_exponential(lam, profile)  # noqa: E731
        value = lambda lam: -lam * statistic + _log_mgf_exponential(lam, profile)  # noqa: E731
        if top > 0.0:  # the slope tends to +inf as lam -> 1 / e_max: bisect on (0, 1/e_max)
            high = 1.0 / top
    if draws == "bernoulli" or top == 0.0:
        while slope(high) < 0.0:  # the slope rises above the statistic (checked above)
            low, high = high, 2.0 * high
            if high > 1e300:
                break
    best = _solve(slope, curvature, low, high, statistic)
    if draws == "exponential" and top > 0.0:
        best = min(best, math.nextafter(high, 0.0))
    bound = value(best) if best > 0.0 else 0.0
    return min(bound, 0.0), best


def _solve(
    slope: Callable[[float], float], curvature: Callable[[float], float], low: float, high: float, scale: float
) -> float:
    """Root of the increasing `slope` in (low, high), slope(low) < 0 <= slope(high): Newton inside a bisection bracket.

    Any lambda gives a valid bound, so the tolerance only decides how tight it is (relative 1e-12 on the slope).
    """
    lam = 0.5 * (low + high)
    for _ in range(_BISECTIONS):
        g = slope(lam)
        if abs(g) <= 1e-12 * max(scale, 1.0):
            return lam
        if g < 0.0:
            low = lam
        else:
            high = lam
        h = curvature(lam)
        step = lam - g / h if h > 0.0 else math.nan
        lam = step if low < step < high else 0.5 * (low + high)
        if high - low <= 1e-15 * high:
            break
    return lam


@dataclass(frozen=True, kw_only=True)
class ChernoffTailResult(TestResult):
    """H0: T = sum_i a_i X_i with fixed a_i >= 0 and independent (or negatively associated) null draws X_i (or signed
    a_i and independent draws).

    `log10_pvalue` is the log10 of the Chernoff bound inf_lambda E[e^{lambda T}] e^{-lambda t}: a valid, conservative
    p-value (never a normal approximation). `statistic` is t; `mean` and `sd` are T's mean and standard deviation
    under H0 (independent draws); `n_terms` counts the positive weights, `lam` is the minimising lambda.
    """

    draws: str
    p: float
    mean: float
    sd: float
    n_terms: int
    weight_sum: float
    weight_max: float
    lam: float


def chernoff_tail_test(
    statistic: float, profile: WeightProfile, draws: str, p: float = 0.0, test: str = "chernoff"
) -> ChernoffTailResult:
    """The Chernoff-bound test of `statistic` against the weighted null sum described by `profile`."""
    log_p, lam = chernoff_log_sf(statistic, profile, draws, p)
    log10_p = log_p / LN10
    h0: dict[str, float | str] = {
        "distribution": f"weighted sum of {'Bernoulli(p)' if draws == 'bernoulli' else 'Exp(1)'} draws",
        "bound": "Chernoff: inf_lambda exp(-lambda t) prod_i E[exp(lambda a_i X_i)] (MGF product, binned weights)",
    }
    if draws == "bernoulli":
        h0["p"] = p
    return ChernoffTailResult(
        statistic=float(statistic),
        pvalue=pvalue_from_log10(log10_p) if log10_p > -math.inf else 0.0,
        log10_pvalue=log10_p,
        test=test,
        h0=h0,
        draws=draws,
        p=p,
        mean=profile.mean(draws, p),
        sd=math.sqrt(profile.variance(draws, p)),
        n_terms=profile.n,
        weight_sum=profile.total,
        weight_max=profile.largest,
        lam=lam,
    )
