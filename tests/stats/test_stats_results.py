"""Result dataclasses: frozen, H0 first in the docstring, JSON-safe and round-trippable."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import radio.stats as st
from radio.stats import (
    AdjustedPValues,
    BinomialTailResult,
    FisherResult,
    GammaTailResult,
    KSResult,
    TestResult,
    json_safe,
    pvalue_from_log10,
)

RESULT_CLASSES = [TestResult, BinomialTailResult, GammaTailResult, KSResult, FisherResult, AdjustedPValues]


@pytest.mark.parametrize("cls", RESULT_CLASSES)
def test_docstring_states_h0_first(cls: type) -> None:
    assert (cls.__doc__ or "").lstrip().startswith("H0")


@pytest.mark.parametrize("cls", RESULT_CLASSES)
def test_frozen(cls: type) -> None:
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    assert params.frozen


def test_json_round_trip_with_infinities() -> None:
    res = st.binomial_tail_test(6, 5, 0.5)  # k > n: log10 p = -inf
    assert res.log10_pvalue == -math.inf and res.pvalue == 0.0
    d = res.to_dict()
    assert d["log10_pvalue"] == "-inf"
    text = json.dumps(d, allow_nan=False)
    back = BinomialTailResult.from_dict(json.loads(text))
    assert back == res
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.pvalue = 1.0  # type: ignore[misc]


def test_round_trip_each_result() -> None:
    rng = np.random.default_rng(0)
    results = [
        st.binomial_tail_test(270_000, 1_000_000, 0.25),
        st.gamma_tail_test(1.05e6, 1e6),
        st.ks_2samp(rng.normal(size=50), rng.normal(size=70)),
        st.fisher_combine([-500.0, -1.0]),
        st.holm([-math.inf, -2.0, -0.5]),
    ]
    for res in results:
        d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
        assert type(res).from_dict(d) == res


def test_json_safe_and_pvalue_from_log10() -> None:
    assert json_safe({"a": np.float64(math.inf), "b": (np.int64(3), math.nan), "c": np.array([1.0])}) == {
        "a": "inf",
        "b": [3, "nan"],
        "c": [1.0],
    }
    with pytest.raises(TypeError):
        json_safe(object())
    assert pvalue_from_log10(-2.0) == pytest.approx(0.01)
    assert pvalue_from_log10(-500.0) == 0.0
    assert pvalue_from_log10(-math.inf) == 0.0
    with pytest.raises(ValueError):
        pvalue_from_log10(0.5)
