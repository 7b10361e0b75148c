"""Multiple-testing corrections and Fisher's combination over a family of log10 p-values, in log space.

Inputs are log10 p-values (each <= 0, -inf allowed for p = 0, NaN rejected), as produced by the exact tails,
so that a family of p-values of 1e-500 is handled without underflow. The adjusted values are those of
statsmodels' `multipletests` (methods "bonferroni", "holm", "fdr_bh"), computed on log10 p.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from radio.stats.results import AdjustedPValues, FisherResult, pvalue_from_log10
from radio.stats.tails import LN10, log_gamma_sf

__all__ = ["benjamini_hochberg", "bonferroni", "fisher_combine", "holm"]


def _check_family(log10_pvalues: ArrayLike) -> NDArray[np.float64]:
    lp = np.asarray(log10_pvalues, dtype=np.float64)
    if lp.ndim != 1:
        raise ValueError(f"log10 p-values must be a 1-D sequence, got shape {lp.shape}")
    if lp.size == 0:
        raise ValueError("empty family of p-values: nothing to correct or combine")
    if np.any(np.isnan(lp)):
        raise ValueError("log10 p-values contain NaN")
    if np.any(lp > 0):
        bad = lp[lp > 0][0]
        raise ValueError(f"log10 p-values must be <= 0 (p <= 1), got {bad}")
    return lp


def _result(method: str, controls: str, lp: NDArray[np.float64], adj: NDArray[np.float64]) -> AdjustedPValues:
    return AdjustedPValues(
        method=method,
        controls=controls,
        m=int(lp.size),
        log10_pvalues=tuple(float(v) for v in lp),
        log10_adjusted=tuple(float(v) for v in np.minimum(adj, 0.0)),
    )


def bonferroni(log10_pvalues: ArrayLike) -> AdjustedPValues:
    """Bonferroni correction (controls FWER): adjusted p_i = min(1, m p_i), on log10 p."""
    lp = _check_family(log10_pvalues)
    return _result("bonferroni", "FWER", lp, lp + math.log10(lp.size))


def holm(log10_pvalues: ArrayLike) -> AdjustedPValues:
    """Holm's step-down correction (controls FWER), on log10 p.

    With p_(1) <= ... <= p_(m) sorted ascending: adjusted p_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)).
    """
    lp = _check_family(log10_pvalues)
    m = lp.size
    order = np.argsort(lp, kind="stable")
    raw = lp[order] + np.log10(np.arange(m, 0, -1, dtype=np.float64))
    adj = np.empty_like(lp)
    adj[order] = np.maximum.accumulate(raw)
    return _result("holm", "FWER", lp, adj)


def benjamini_hochberg(log10_pvalues: ArrayLike) -> AdjustedPValues:
    """Benjamini-Hochberg step-up adjustment (controls FDR under independence / PRDS), on log10 p.

    With p_(1) <= ... <= p_(m) sorted ascending: adjusted p_(i) = min(1, min_{j >= i} m p_(j) / j), which is
    monotone in p (statsmodels' "fdr_bh").
    """
    lp = _check_family(log10_pvalues)
    m = lp.size
    order = np.argsort(lp, kind="stable")
    ranks = np.arange(1, m + 1, dtype=np.float64)
    raw = lp[order] + (math.log10(m) - np.log10(ranks))
    adj = np.empty_like(lp)
    adj[order] = np.minimum.accumulate(raw[::-1])[::-1]
    return _result("fdr_bh", "FDR", lp, adj)


def fisher_combine(log10_pvalues: ArrayLike) -> FisherResult:
    """Fisher's combination of m independent p-values: statistic X = -2 sum(ln p_i) ~ chi2(2m) under H0.

    The combined p-value P(chi2(2m) >= X) = Q(m, X/2) is the exact gamma tail in log space, so it stays
    exact when the p-values are 1e-500 each. A p-value of exactly 0 (log10 = -inf) gives -inf.
    """
    lp = _check_family(log10_pvalues)
    m = int(lp.size)
    half_x = -LN10 * float(np.sum(lp))  # = -sum(ln p_i) >= 0
    if math.isinf(half_x):
        log10_p = -math.inf
    else:
        log10_p = min(0.0, log_gamma_sf(half_x, m) / LN10)
    return FisherResult(
        statistic=2.0 * half_x,
        pvalue=pvalue_from_log10(log10_p),
        log10_pvalue=log10_p,
        test="fisher",
        h0={"hypothesis": "all nulls true, independent uniform p-values", "m": float(m), "dof": float(2 * m)},
        m=m,
    )
