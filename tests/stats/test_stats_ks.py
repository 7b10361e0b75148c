"""Two-sample KS test: agreement with scipy, power on a shift, calibration under H0, underflow fallback."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import special, stats
from scipy.special import gammaln

from radio.stats import KSResult, ks_2samp, ks_asymptotic_log10_sf


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
@pytest.mark.parametrize(("n_a", "n_b"), [(30, 30), (100, 137), (2000, 500), (12_000, 11_000)])
def test_agrees_with_scipy(alternative: str, n_a: int, n_b: int) -> None:
    rng = np.random.default_rng(n_a + n_b)
    a = rng.normal(0.0, 1.0, n_a)
    b = rng.normal(0.1, 1.2, n_b)
    res = ks_2samp(a, b, alternative=alternative)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy: exact failed, switching to asymp
        ref = stats.ks_2samp(a, b, alternative=alternative, method="auto")
    assert isinstance(res, KSResult)
    assert res.statistic == float(ref.statistic)
    assert res.pvalue == float(ref.pvalue)
    assert res.log10_pvalue == pytest.approx(math.log10(ref.pvalue), rel=1e-12, abs=1e-15)
    assert res.log10_method == "scipy"
    assert res.pvalue_method in ("exact", "asymp")
    if max(n_a, n_b) > 10_000:
        assert res.pvalue_method == "asymp"
    assert (res.n_a, res.n_b, res.alternative) == (n_a, n_b, alternative)
    assert res.h0["alternative"] == alternative


def test_detects_shift_and_direction() -> None:
    rng = np.random.default_rng(0)
    members = rng.normal(0.0, 1.0, 400)  # lower loss: empirical CDF above the non-members'
    non_members = rng.normal(1.0, 1.0, 400)
    two = ks_2samp(members, non_members)
    assert two.log10_pvalue < -20
    assert two.statistic_sign == 1
    assert ks_2samp(members, non_members, alternative="greater").log10_pvalue < -20
    assert ks_2samp(members, non_members, alternative="less").log10_pvalue > -1


def test_pvalues_calibrated_under_h0() -> None:
    rng = np.random.default_rng(12345)
    reps, alpha = 400, 0.05
    rejections = 0
    pvalues = []
    for _ in range(reps):
        res = ks_2samp(rng.normal(size=40), rng.normal(size=60))
        pvalues.append(res.pvalue)
        rejections += res.log10_pvalue <= math.log10(alpha)
    lo, hi = stats.binom.interval(0.999, reps, alpha)
    assert lo <= rejections <= hi, rejections
    # roughly uniform: the mean of the p-values is near 1/2 (the exact test is slightly conservative)
    assert 0.45 <= float(np.mean(pvalues)) <= 0.6


def test_underflow_uses_asymptotic_log_tail() -> None:
    a = np.arange(5000.0)
    b = np.arange(5000.0) + 10_000.0  # complete separation: D = 1, exact p = 2 / C(10000, 5000)
    res = ks_2samp(a, b)
    assert res.pvalue == 0.0
    assert res.log10_method == "asymptotic"
    assert res.statistic == 1.0
    expected = (math.log(2.0) - 2.0 * 2500.0) / math.log(10.0)
    assert res.log10_pvalue == pytest.approx(expected, rel=1e-12)
    exact = (math.log(2.0) - (gammaln(10_001) - 2 * gammaln(5001))) / math.log(10.0)
    assert exact == pytest.approx(-3007.9, abs=0.05)
    assert res.log10_pvalue >= exact  # conservative here
    one = ks_2samp(a, b, alternative="greater")
    assert one.log10_method == "asymptotic"
    assert one.log10_pvalue == pytest.approx(-2.0 * 2500.0 / math.log(10.0), rel=1e-12)


@pytest.mark.parametrize("z", [0.3, 0.8, 1.0, 1.5, 3.0, 6.0])
def test_asymptotic_tail_matches_kolmogorov(z: float) -> None:
    n = 100
    d = z / math.sqrt(n * n / (2 * n))
    two = ks_asymptotic_log10_sf(d, n, n)
    assert two == pytest.approx(math.log10(special.kolmogorov(z)), rel=1e-12, abs=1e-15)
    assert ks_asymptotic_log10_sf(d, n, n, "less") == pytest.approx(-2 * z * z / math.log(10.0), rel=1e-14)
    assert ks_asymptotic_log10_sf(0.0, n, n) == 0.0


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        ks_2samp([], [1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        ks_2samp([1.0, math.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="alternative"):
        ks_2samp([1.0], [2.0], alternative="bigger")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        ks_2samp(np.ones((2, 2)), [1.0])
