"""Frozen result dataclasses of the statistical tests, with JSON-safe serialisation.

`log10_pvalue` is the primary field of every result: `pvalue` is 10 ** log10_pvalue and underflows to 0.0
below ~1e-308, which is routine for watermark tests (log10 p of -500 or -100000).

JSON: `to_dict()` gives only str / int / float / bool / None / list / dict values. Non-finite floats become
the strings "inf", "-inf" and "nan" (so `json.dumps(..., allow_nan=False)` works and `float(s)` reads them
back); `from_dict()` inverts this for the float fields.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np

__all__ = [
    "AdjustedPValues",
    "BinomialTailResult",
    "FisherResult",
    "GammaTailResult",
    "KSResult",
    "TestResult",
    "json_safe",
    "pvalue_from_log10",
]

_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def pvalue_from_log10(log10_p: float) -> float:
    """Return 10 ** log10_p as a float: the plain p-value, 0.0 where it underflows (log10_p < ~-323)."""
    if math.isnan(log10_p):
        return math.nan
    if log10_p > 0:
        raise ValueError(f"log10 p-value must be <= 0, got {log10_p}")
    return 10.0**log10_p


def json_safe(value: Any) -> Any:
    """Convert a value to JSON-safe Python types: non-finite floats to "inf" / "-inf" / "nan", numpy
    scalars and arrays to Python numbers and lists, tuples to lists, mappings to dicts with str keys."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isfinite(f):
            return f
        return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    raise TypeError(f"cannot make {type(value).__name__} JSON-safe")


def _float_back(value: Any) -> Any:
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    return value


class _Serialisable:
    """Mixin: `to_dict` / `from_dict` for the frozen result dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-safe dict; non-finite floats are the strings "inf", "-inf", "nan"."""
        assert dataclasses.is_dataclass(self)
        return {f.name: json_safe(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a result from `to_dict()` output: "inf" / "-inf" / "nan" strings in float and
        tuple-of-float fields become floats again, lists become tuples. `h0` is passed through as is."""
        assert dataclasses.is_dataclass(cls)
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            hint = str(hints.get(f.name, ""))
            if isinstance(value, list):
                value = tuple(_float_back(v) if "float" in hint else v for v in value)
            elif "float" in hint and f.name != "h0":
                value = _float_back(value)
            kwargs[f.name] = value
        return cls(**kwargs)


@dataclass(frozen=True, kw_only=True)
class TestResult(_Serialisable):
    """H0 is the hypothesis that `h0` describes (each subclass states its own); base of every test result.

    Attributes:
        statistic: the test statistic.
        pvalue: 10 ** log10_pvalue; may underflow to 0.0, which is why `log10_pvalue` is the primary field.
        log10_pvalue: log10 of the p-value, computed in log space (never log10 of `pvalue`).
        test: name of the test.
        h0: the parameters that define H0 (a plain dict: the dataclass is frozen, its dict is not).
    """

    __test__: ClassVar[bool] = False  # not a pytest test class

    statistic: float
    pvalue: float
    log10_pvalue: float
    test: str
    h0: dict[str, float | str]


@dataclass(frozen=True, kw_only=True)
class BinomialTailResult(TestResult):
    """H0: the count k is Binomial(n, p) (e.g. green tokens among n scored, each green with probability p).

    The p-value is the exact one-sided tail P(X >= k); `log10_mid_pvalue` is the mid-p value
    P(X > k) + P(X = k)/2 (calibrated, mean 1/2 under H0: for calibration plots, not for reporting).
    `statistic` is k.
    """

    k: int
    n: int
    p: float
    log10_mid_pvalue: float


@dataclass(frozen=True, kw_only=True)
class GammaTailResult(TestResult):
    """H0: x is a sum of n i.i.d. Exp(1) scores, i.e. Gamma(n, 1) (Aaronson-Kirchner watermark scores).

    The p-value is the exact tail P(Gamma(n, 1) >= x). `statistic` is x.
    """

    x: float
    n: float


@dataclass(frozen=True, kw_only=True)
class KSResult(TestResult):
    """H0: both samples come from the same continuous distribution (two-sided); for alternative "less", H0 is
    F_a(t) >= F_b(t) for all t, for "greater" F_a(t) <= F_b(t), with F_a, F_b the CDFs of the populations
    that samples a and b come from (scipy's convention).

    `statistic` is the KS distance D. `pvalue_method` is the method scipy used ("exact" or "asymp");
    `log10_method` is "scipy" when log10 p is log10 of scipy's p-value, or "asymptotic" when scipy's p-value
    underflowed and the asymptotic Kolmogorov-Smirnov log tail was used.
    `statistic_sign` is +1 when the largest gap is F_a - F_b > 0 (sample a stochastically smaller), else -1.
    """

    n_a: int
    n_b: int
    alternative: str
    pvalue_method: str
    log10_method: str
    statistic_location: float
    statistic_sign: int


@dataclass(frozen=True, kw_only=True)
class FisherResult(TestResult):
    """H0: all m null hypotheses hold and their p-values are independent Uniform(0, 1).

    Fisher's statistic -2 sum(ln p_i) is chi-square with 2m degrees of freedom under H0; its tail is the
    exact gamma tail Q(m, -sum(ln p_i)), computed in log space.
    """

    m: int


@dataclass(frozen=True, kw_only=True)
class AdjustedPValues(_Serialisable):
    """H0 for each i: the i-th null hypothesis of the family holds; adjusted p-values for a family of m tests.

    Rejecting every i with adjusted p <= alpha controls the family-wise error rate ("bonferroni", "holm") or
    the false discovery rate ("fdr_bh", under independence or positive dependence) at level alpha.

    Attributes:
        method: "bonferroni", "holm" or "fdr_bh".
        controls: "FWER" or "FDR".
        m: family size.
        log10_pvalues: the raw log10 p-values, in input order.
        log10_adjusted: the adjusted log10 p-values, in input order (statsmodels' `multipletests` values).
    """

    method: str
    controls: str
    m: int
    log10_pvalues: tuple[float, ...]
    log10_adjusted: tuple[float, ...]

    @property
    def adjusted_pvalues(self) -> tuple[float, ...]:
        """The adjusted p-values 10 ** log10_adjusted (0.0 where they underflow)."""
        return tuple(pvalue_from_log10(v) for v in self.log10_adjusted)

    def reject(self, alpha: float) -> tuple[bool, ...]:
        """Which hypotheses are rejected at level alpha (adjusted p <= alpha), in input order."""
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must satisfy 0 < alpha <= 1, got {alpha}")
        threshold = math.log10(alpha)
        return tuple(v <= threshold for v in self.log10_adjusted)
