"""Clopper–Pearson and exact McNemar against independent computations (mpmath, exact fractions) and known values."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from scipy import stats as sps

from radio.replication.stats import McNemarResult, ProportionInterval, clopper_pearson, mcnemar_exact


def test_known_values():
    """Published values: 5/10 -> (0.1871, 0.8129); 0/10 upper = 1 - 0.025^(1/10); 10/10 lower = 0.025^(1/10)."""
    mid = clopper_pearson(5, 10)
    assert mid.ci_low == pytest.approx(0.187086, abs=1e-6)
    assert mid.ci_high == pytest.approx(0.812914, abs=1e-6)
    zero = clopper_pearson(0, 10)
    assert zero.ci_low == 0.0
    assert zero.ci_high == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-12)
    full = clopper_pearson(10, 10)
    assert full.ci_high == 1.0
    assert full.ci_low == pytest.approx(0.025 ** (1 / 10), rel=1e-12)


@pytest.mark.parametrize(("k", "n"), [(1, 7), (3, 20), (37, 50), (120, 500), (499, 500)])
def test_bounds_solve_the_binomial_tail_equations(k, n):
    """Independent check with mpmath: P(X >= k | p_low) = alpha/2 and P(X <= k | p_high) = alpha/2."""
    mpmath.mp.dps = 40
    interval = clopper_pearson(k, n, confidence=0.9)

    def upper_tail(p):
        return mpmath.fsum(mpmath.binomial(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))

    def lower_tail(p):
        return mpmath.fsum(mpmath.binomial(n, i) * p**i * (1 - p) ** (n - i) for i in range(0, k + 1))

    assert float(upper_tail(mpmath.mpf(interval.ci_low))) == pytest.approx(0.05, rel=1e-7)
    assert float(lower_tail(mpmath.mpf(interval.ci_high))) == pytest.approx(0.05, rel=1e-7)


@pytest.mark.parametrize("p", [0.01, 0.05, 0.29, 0.5, 0.75, 0.98])
def test_coverage_is_at_least_nominal(p):
    """Calibration, computed exactly: sum of Binomial(n, p) mass over the k whose interval covers p."""
    n = 60
    covered = np.array([clopper_pearson(k, n).ci_low <= p <= clopper_pearson(k, n).ci_high for k in range(n + 1)])
    coverage = sps.binom.pmf(np.arange(n + 1), n, p)[covered].sum()
    assert coverage >= 0.95 - 1e-12


def test_interval_validation():
    with pytest.raises(ValueError, match="n must be positive"):
        clopper_pearson(0, 0)
    with pytest.raises(ValueError, match="successes"):
        clopper_pearson(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        clopper_pearson(1, 10, confidence=1.0)
    assert ProportionInterval.__doc__.startswith("H0")


def _mcnemar_fraction(n_ab: int, n_ba: int) -> float:
    """Exact two-sided McNemar p with rational arithmetic (independent of scipy and radio.stats)."""
    n = n_ab + n_ba
    if n == 0:
        return 1.0
    tail = sum(Fraction(math.comb(n, i), 2**n) for i in range(min(n_ab, n_ba) + 1))
    return float(min(Fraction(1), 2 * tail))


def test_mcnemar_known_value_and_reference():
    """b = 1, c = 9: p = 2 * 11 / 1024 = 0.021484375 (the textbook exact McNemar value)."""
    a = np.array([1] + [0] * 9 + [1] * 5 + [0] * 5, dtype=bool)
    b = np.array([0] + [1] * 9 + [1] * 5 + [0] * 5, dtype=bool)
    result = mcnemar_exact(a, b)
    assert isinstance(result, McNemarResult)
    assert (result.n_ab, result.n_ba, result.n_pairs) == (1, 9, 20)
    assert result.pvalue == pytest.approx(22 / 1024, rel=1e-12)
    assert result.log10_pvalue == pytest.approx(math.log10(22 / 1024), rel=1e-12)
    rng = np.random.default_rng(3)
    for _ in range(20):
        x, y = rng.random(300) < 0.4, rng.random(300) < rng.uniform(0.3, 0.6)
        got = mcnemar_exact(x, y)
        assert got.pvalue == pytest.approx(_mcnemar_fraction(got.n_ab, got.n_ba), rel=1e-9)
        assert got.pvalue == pytest.approx(mcnemar_exact(y, x).pvalue, rel=1e-12)  # symmetric


def test_mcnemar_edge_cases_and_far_tail():
    same = np.array([True, False, True])
    assert mcnemar_exact(same, same).pvalue == 1.0
    # 2000 discordant pairs all one way: p = 2 * 2^-2000, below float range; log10 stays exact.
    a = np.ones(2000, dtype=bool)
    result = mcnemar_exact(a, ~a)
    assert result.log10_pvalue == pytest.approx(math.log10(2) - 2000 * math.log10(2), rel=1e-10)
    with pytest.raises(ValueError, match="differ in length"):
        mcnemar_exact([True], [True, False])
    assert McNemarResult.__doc__.startswith("H0")


def test_mcnemar_calibrated_under_h0():
    """Exact size: P(p <= alpha) <= alpha when discordant pairs split 1/2, for every number of discordant pairs."""
    for n in (5, 17, 40):
        pvalues = np.array([_mcnemar_fraction(k, n - k) for k in range(n + 1)])
        mass = sps.binom.pmf(np.arange(n + 1), n, 0.5)
        for alpha in (0.01, 0.05, 0.2):
            assert mass[pvalues <= alpha].sum() <= alpha + 1e-12
