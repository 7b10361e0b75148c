"""Exact statistics in log space: binomial / gamma tails, result dataclasses, KS test, multiple testing.

Every p-value is reported as `log10_pvalue`, computed in log space from p = 1 down to log10 p = -1e8 and
beyond; the plain `pvalue` may underflow to 0.0. z-scores (`z_binom`, `z_gamma`) are cross-checks only.
"""

from radio.stats.ks import ks_2samp, ks_asymptotic_log10_sf
from radio.stats.multiple import benjamini_hochberg, bonferroni, fisher_combine, holm
from radio.stats.results import (
    AdjustedPValues,
    BinomialTailResult,
    FisherResult,
    GammaTailResult,
    KSResult,
    TestResult,
    json_safe,
    pvalue_from_log10,
)
from radio.stats.tails import (
    LN10,
    binomial_tail_test,
    gamma_tail_test,
    log10_binom_sf,
    log10_binom_sf_array,
    log10_binom_sf_mid,
    log10_binom_sf_mid_array,
    log10_gamma_sf,
    log10_gamma_sf_array,
    log_binom_pmf_array,
    log_binom_sf,
    log_binom_sf_array,
    log_binom_sf_mid,
    log_binom_sf_mid_array,
    log_gamma_sf,
    log_gamma_sf_array,
    to_log10,
    z_binom,
    z_gamma,
)

__all__ = [
    "LN10",
    "AdjustedPValues",
    "BinomialTailResult",
    "FisherResult",
    "GammaTailResult",
    "KSResult",
    "TestResult",
    "benjamini_hochberg",
    "binomial_tail_test",
    "bonferroni",
    "fisher_combine",
    "gamma_tail_test",
    "holm",
    "json_safe",
    "ks_2samp",
    "ks_asymptotic_log10_sf",
    "log10_binom_sf",
    "log10_binom_sf_array",
    "log10_binom_sf_mid",
    "log10_binom_sf_mid_array",
    "log10_gamma_sf",
    "log10_gamma_sf_array",
    "log_binom_pmf_array",
    "log_binom_sf",
    "log_binom_sf_array",
    "log_binom_sf_mid",
    "log_binom_sf_mid_array",
    "log_gamma_sf",
    "log_gamma_sf_array",
    "pvalue_from_log10",
    "to_log10",
    "z_binom",
    "z_gamma",
]
