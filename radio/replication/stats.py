"""Statistics of the replication audit: Clopper–Pearson intervals for replication and object rates, and the exact
McNemar test between two prompt kinds generated from the same seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from radio.stats.results import TestResult, _Serialisable, pvalue_from_log10
from radio.stats.tails import log10_binom_sf


@dataclass(frozen=True, kw_only=True)
class ProportionInterval(_Serialisable):
    """H0 (inverted): the success probability equals p; the interval holds every p that the exact equal-tailed
    binomial test does not reject at level 1 - confidence (Clopper–Pearson, 1934).

    Coverage is at least `confidence` for every true rate. `ci_low` is exactly 0 when `successes` is 0 and
    `ci_high` exactly 1 when `successes` is `n` (the beta quantile is undefined there).
    """

    __test__: ClassVar[bool] = False

    successes: int
    n: int
    rate: float
    ci_low: float
    ci_high: float
    confidence: float


def clopper_pearson(successes: int, n: int, confidence: float = 0.95) -> ProportionInterval:
    """Exact two-sided Clopper–Pearson interval for `successes` out of `n` (n > 0)."""
    if isinstance(successes, bool) or isinstance(n, bool):
        raise ValueError("successes and n must be integers, not booleans")
    successes, n = int(successes), int(n)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n={n}], got {successes}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else float(sps.beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(sps.beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return ProportionInterval(
        successes=successes, n=n, rate=successes / n, ci_low=low, ci_high=high, confidence=confidence
    )


def clopper_pearson_from_flags(flags: ArrayLike, confidence: float = 0.95) -> ProportionInterval:
    """Clopper–Pearson interval of the share of true values in a boolean array (one flag per generation)."""
    values = np.asarray(flags, dtype=bool).ravel()
    return clopper_pearson(int(values.sum()), int(values.size), confidence)


@dataclass(frozen=True, kw_only=True)
class McNemarResult(TestResult):
    """H0: on paired seeds, kind A and kind B replicate with the same probability, i.e. each discordant pair
    (one replicates, the other does not) is equally likely to go either way: n_ab ~ Binomial(n_ab + n_ba, 1/2).

    Exact two-sided test: p = min(1, 2 P(X <= min(n_ab, n_ba))), X ~ Binomial(n_ab + n_ba, 1/2); p = 1 when no
    pair is discordant. `statistic` is n_ab. `rate_a` and `rate_b` are the two replication rates over all pairs.
    """

    n_pairs: int
    n_ab: int  # A replicates, B does not
    n_ba: int  # B replicates, A does not
    rate_a: float
    rate_b: float


def mcnemar_exact(a: ArrayLike, b: ArrayLike) -> McNemarResult:
    """Exact McNemar test between two boolean arrays of replication flags paired by seed (a[i], b[i] same seed)."""
    flags_a = np.asarray(a, dtype=bool).ravel()
    flags_b = np.asarray(b, dtype=bool).ravel()
    if flags_a.shape != flags_b.shape:
        raise ValueError(f"paired flags differ in length: {flags_a.size} and {flags_b.size}")
    if flags_a.size == 0:
        raise ValueError("no pairs to test")
    n_ab = int(np.sum(flags_a & ~flags_b))
    n_ba = int(np.sum(~flags_a & flags_b))
    discordant = n_ab + n_ba
    if discordant == 0:
        log10_p = 0.0
    else:
        # P(X <= m) = P(X >= n - m) at p = 1/2: the exact log-space upper tail serves the lower one.
        smaller = min(n_ab, n_ba)
        log10_p = min(0.0, math.log10(2.0) + log10_binom_sf(discordant - smaller, discordant, 0.5))
    return McNemarResult(
        statistic=float(n_ab),
        pvalue=pvalue_from_log10(log10_p),
        log10_pvalue=log10_p,
        test="mcnemar-exact",
        h0={"discordant_share": 0.5, "alternative": "two-sided"},
        n_pairs=int(flags_a.size),
        n_ab=n_ab,
        n_ba=n_ba,
        rate_a=float(flags_a.mean()),
        rate_b=float(flags_b.mean()),
    )
