"""Multiple-testing corrections on log10 p-values against hand-computed (statsmodels-definition) values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radio.stats import AdjustedPValues, benjamini_hochberg, bonferroni, fisher_combine, holm, log10_gamma_sf


def _adj(res: AdjustedPValues) -> list[float]:
    return [10.0**v for v in res.log10_adjusted]


P = [0.01, 0.04, 0.03, 0.005]
LP = [math.log10(p) for p in P]


def test_bonferroni_by_hand() -> None:
    res = bonferroni(LP)
    assert _adj(res) == pytest.approx([0.04, 0.16, 0.12, 0.02], rel=1e-12)
    assert _adj(bonferroni([math.log10(0.3), math.log10(0.6)])) == pytest.approx([0.6, 1.0])
    assert res.method == "bonferroni" and res.controls == "FWER" and res.m == 4


def test_holm_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max 0.02, 0.03, 0.06, 0.06
    res = holm(LP)
    assert _adj(res) == pytest.approx([0.03, 0.06, 0.06, 0.02], rel=1e-12)
    assert res.reject(0.05) == (True, False, False, True)
    # clipping at 1 and order independence
    assert _adj(holm([math.log10(0.5), math.log10(0.4), math.log10(0.9)])) == pytest.approx([1.0, 1.0, 1.0])
    assert holm(LP[::-1]).log10_adjusted == res.log10_adjusted[::-1]


def test_bh_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times m/i = 4, 2, 4/3, 1 = 0.02, 0.02, 0.04, 0.04; running min from the top
    res = benjamini_hochberg(LP)
    assert _adj(res) == pytest.approx([0.02, 0.04, 0.04, 0.02], rel=1e-12)
    assert res.method == "fdr_bh" and res.controls == "FDR"
    # non-monotone raw values: 0.04, 0.04, 0.0333, 0.5 -> 0.0333, 0.0333, 0.0333, 0.5
    res2 = benjamini_hochberg([math.log10(p) for p in [0.01, 0.02, 0.025, 0.5]])
    assert _adj(res2) == pytest.approx([0.1 / 3, 0.1 / 3, 0.1 / 3, 0.5], rel=1e-12)
    assert res2.reject(0.05) == (True, True, True, False)


def test_ties_and_single_test() -> None:
    tied = [math.log10(0.01)] * 3
    assert _adj(holm(tied)) == pytest.approx([0.03] * 3)
    assert _adj(benjamini_hochberg(tied)) == pytest.approx([0.01] * 3)
    for method in (bonferroni, holm, benjamini_hochberg):
        assert method([-7.5]).log10_adjusted == (-7.5,)


def test_deep_log_values_stay_exact() -> None:
    lp = [-500.0, -600.0, -0.1]
    assert holm(lp).log10_adjusted == pytest.approx([-500 + math.log10(2), -600 + math.log10(3), -0.1])
    bh = benjamini_hochberg(lp)
    assert bh.log10_adjusted == pytest.approx([-500 + math.log10(3 / 2), -600 + math.log10(3), -0.1])
    assert bonferroni([-math.inf, -1.0]).log10_adjusted == (-math.inf, -1 + math.log10(2))
    assert bh.adjusted_pvalues[0] == 0.0  # underflows; the log10 value does not


def test_adjusted_are_monotone_in_raw() -> None:
    rng = np.random.default_rng(3)
    lp = np.log10(rng.uniform(size=200)) * rng.uniform(0, 5, size=200)
    order = np.argsort(lp)
    for method in (bonferroni, holm, benjamini_hochberg):
        adj = np.array(method(lp).log10_adjusted)
        assert np.all(np.diff(adj[order]) >= 0)
        assert np.all(adj >= lp) and np.all(adj <= 0)


def test_fisher_closed_forms() -> None:
    # m = 1: the combined p-value is the p-value itself
    assert fisher_combine([-3.0]).log10_pvalue == pytest.approx(-3.0, rel=1e-12)
    # m = 2: P = t (1 - ln t) with t = p1 p2
    t = 0.01 * 0.02
    res = fisher_combine([math.log10(0.01), math.log10(0.02)])
    assert res.pvalue == pytest.approx(t * (1 - math.log(t)), rel=1e-12)
    assert res.statistic == pytest.approx(-2 * math.log(t), rel=1e-12)
    assert res.m == 2 and res.h0["dof"] == 4.0
    # m = 3 at log10 p = -500 each: P = t (1 + L + L^2 / 2), L = -ln t = 1500 ln 10
    big_l = 1500 * math.log(10)
    expected = -1500 + math.log10(1 + big_l + big_l**2 / 2)
    deep = fisher_combine([-500.0, -500.0, -500.0])
    assert deep.log10_pvalue == pytest.approx(expected, rel=1e-12)
    assert deep.pvalue == 0.0
    # equals the chi-square(2m) tail = gamma(m) tail
    assert deep.log10_pvalue == pytest.approx(log10_gamma_sf(big_l, 3), rel=1e-15)
    assert fisher_combine([0.0, 0.0]).log10_pvalue == 0.0
    assert fisher_combine([-math.inf, -1.0]).log10_pvalue == -math.inf


@pytest.mark.parametrize("func", [bonferroni, holm, benjamini_hochberg, fisher_combine])
def test_invalid_families(func) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="empty"):
        func([])
    with pytest.raises(ValueError, match="NaN"):
        func([-1.0, math.nan])
    with pytest.raises(ValueError, match="<= 0"):
        func([-1.0, 0.5])
    with pytest.raises(ValueError, match="1-D"):
        func([[-1.0], [-2.0]])


def test_reject_validates_alpha() -> None:
    with pytest.raises(ValueError):
        holm([-1.0]).reject(0.0)
