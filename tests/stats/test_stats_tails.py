"""Exact log-space tails against independent 50-digit mpmath references, from p = 0.5 to log10 p < -1e5."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest

mp = pytest.importorskip("mpmath")

from stats_reference import (  # noqa: E402
    LN10,
    ref_log_binom_pmf,
    ref_log_binom_sf,
    ref_log_binom_sf_betainc,
    ref_log_gamma_sf,
    ref_log_gamma_sf_mpmath,
)

from radio.stats import (  # noqa: E402
    binomial_tail_test,
    gamma_tail_test,
    log10_binom_sf,
    log10_binom_sf_array,
    log10_binom_sf_mid,
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

REL_TOL = 1e-9  # required relative accuracy of log10 p
_WORST: dict[str, float] = {}


def _rel_err(value: float, ref: Any) -> float:
    err = float(abs((mp.mpf(value) - ref) / ref))
    return err


# (k, n, p): log10 p from -0.3 down to -3e8; n from 1 to 1e9; both sides of the mean; around the switch
# between scipy's body values and the continued fractions (sf ~ 1e-4 at k ~ 2661 for n = 1e4).
BINOM_CASES = [
    (1, 1, 0.5),
    (6, 10, 0.5),
    (30, 100, 0.25),
    (40, 100, 0.25),
    (100, 100, 0.25),
    (20, 100, 0.25),  # p ~ 0.9: lower side
    (95, 100, 0.9),
    (99, 100, 0.9),
    (3, 1000, 0.001),
    (300, 1000, 0.25),
    (200, 1000, 0.25),  # deep lower side: log p ~ -1e-3
    (2659, 10_000, 0.25),
    (2661, 10_000, 0.25),
    (2663, 10_000, 0.25),
    (2600, 10_000, 0.25),
    (26_000, 100_000, 0.25),
    (5, 1_000_000, 1e-6),
    (270_000, 1_000_000, 0.25),  # DESIGN: -457.4
    (600_000, 1_000_000, 0.25),  # log10 p ~ -1.2e5
    (2_600_000, 10_000_000, 0.25),
    (4_000_000, 10_000_000, 0.1),  # log10 p ~ -1.35e6
    (251_000_000, 1_000_000_000, 0.25),  # z = 73, n = 1e9: cancellation test
    (260_000_000, 1_000_000_000, 0.25),  # log10 p ~ -1.2e5 at n = 1e9
    (1_000_000_000, 1_000_000_000, 0.5),  # p^n: log10 p = -3.0e8
]


@pytest.mark.parametrize(("k", "n", "p"), BINOM_CASES)
def test_binom_sf_against_mpmath(k: int, n: int, p: float) -> None:
    ref = ref_log_binom_sf(k, n, p)
    err = _rel_err(log_binom_sf(k, n, p), ref)
    _WORST["binom"] = max(_WORST.get("binom", 0.0), err)
    assert err <= REL_TOL, (k, n, p, float(ref / LN10), err)
    # log10 form, relative error in log10 p
    err10 = _rel_err(log10_binom_sf(k, n, p), ref / LN10)
    assert err10 <= REL_TOL


def test_binom_reference_covers_the_range() -> None:
    log10s = [float(ref_log_binom_sf(k, n, p) / LN10) for k, n, p in BINOM_CASES if n <= 10**6]
    assert max(log10s) > -0.31  # p ~ 0.5 (and above)
    assert min(log10s) < -100_000


@pytest.mark.parametrize(("k", "n", "p"), [(6, 10, 0.5), (30, 100, 0.25), (100, 100, 0.25), (300, 1000, 0.25)])
def test_reference_sums_agree_with_mpmath_betainc(k: int, n: int, p: float) -> None:
    a, b = ref_log_binom_sf(k, n, p), ref_log_binom_sf_betainc(k, n, p)
    assert float(abs(a - b)) <= 1e-30 * float(abs(b))


@pytest.mark.parametrize(("k", "n", "p"), [(2, 10, 0.3), (123_456_789, 10**9, 0.1234), (250_600_000, 10**9, 0.25)])
def test_log_pmf_no_cancellation(k: int, n: int, p: float) -> None:
    ref = ref_log_binom_pmf(k, n, p)
    assert _rel_err(float(log_binom_pmf_array(k, n, p)), ref) <= 1e-12


# (x, shape): log10 p from -0.4 down to -4e7; shape from 0.01 to 1e9; both sides of the mean.
GAMMA_CASES = [
    (1.0, 1),
    (12.0, 10),
    (150.0, 100),
    (300.0, 100),
    (90.0, 100),  # lower side, p ~ 0.83
    (50.0, 100),  # deep lower side, log p ~ -1e-8
    (1000.0, 1000.5),
    (990_000.0, 1_000_000),  # z = -10: scipy's gammainc is 2e-10 off here; we are not
    (1_050_000.0, 1_000_000),  # DESIGN: -527.5
    (1_200_000.5, 1_000_000.5),
    (2_000_000.0, 1_000_000),  # log10 p ~ -1.3e5
    (10_158_000.0, 10_000_000),  # z = 50
    (11_000_000.0, 10_000_000),
    (1_003_160_000.0, 1_000_000_000),  # z = 100, n = 1e9: cancellation test
    (1_500_000_000.0, 1_000_000_000),  # log10 p ~ -4e7
]


@pytest.mark.parametrize(("x", "s"), GAMMA_CASES)
def test_gamma_sf_against_mpmath(x: float, s: float) -> None:
    ref = ref_log_gamma_sf_mpmath(x, s) if s < 100 else ref_log_gamma_sf(x, s)
    err = _rel_err(log_gamma_sf(x, s), ref)
    _WORST["gamma"] = max(_WORST.get("gamma", 0.0), err)
    assert err <= REL_TOL, (x, s, float(ref / LN10), err)
    assert _rel_err(log10_gamma_sf(x, s), ref / LN10) <= REL_TOL


@pytest.mark.parametrize(("x", "s"), [(0.5, 0.01), (1e-10, 0.01), (3.3, 2.5), (50.0, 0.5), (30.0, 12.5), (1e-5, 3)])
def test_gamma_sf_small_shapes_against_mpmath_gammainc(x: float, s: float) -> None:
    ref = ref_log_gamma_sf_mpmath(x, s)
    assert _rel_err(log_gamma_sf(x, s), ref) <= REL_TOL


@pytest.mark.parametrize(("x", "s"), [(300.0, 100.5), (250.0, 200.5), (150.0, 200.0)])
def test_gamma_reference_sums_agree_with_mpmath_gammainc(x: float, s: float) -> None:
    a, b = ref_log_gamma_sf(x, s), ref_log_gamma_sf_mpmath(x, s)
    assert float(abs(a - b)) <= 1e-30 * float(abs(b))


def test_gamma_reference_covers_the_range() -> None:
    log10s = [float(ref_log_gamma_sf(x, s) / LN10) for x, s in GAMMA_CASES if 100 <= s <= 10**6]
    assert min(log10s) < -100_000
    assert float(ref_log_gamma_sf_mpmath(1.0, 1) / LN10) > -0.44


def _random_binom_cases(count: int, seed: int) -> list[tuple[int, int, float]]:
    """Random (k, n, p): n log-uniform in [1, 1e7], z in [-8, 300]; |z| >= 5 for n > 1e5 (reference cost)."""
    rng = np.random.default_rng(seed)
    cases: list[tuple[int, int, float]] = []
    while len(cases) < count:
        n = int(10 ** rng.uniform(0, 7))
        p = float(rng.choice([0.5, 0.25, 0.1, 0.75, 0.01]))
        z = float(rng.uniform(-8, 300))
        if n > 100_000 and abs(z) < 5:
            continue
        k = round(n * p + z * math.sqrt(n * p * (1 - p)))
        if 1 <= k <= n:
            cases.append((k, n, p))
    return cases


@pytest.mark.parametrize(("k", "n", "p"), _random_binom_cases(40, seed=7))
def test_binom_sf_random_grid(k: int, n: int, p: float) -> None:
    ref = ref_log_binom_sf(k, n, p)
    err = _rel_err(log_binom_sf(k, n, p), ref)
    _WORST["binom"] = max(_WORST.get("binom", 0.0), err)
    assert err <= REL_TOL, (k, n, p, float(ref / LN10), err)


def _random_gamma_cases(count: int, seed: int) -> list[tuple[float, float]]:
    """Random (x, shape): shape log-uniform in [100, 1e7] (integer or not), z in [-8, 300]."""
    rng = np.random.default_rng(seed)
    cases: list[tuple[float, float]] = []
    while len(cases) < count:
        s = float(round(10 ** rng.uniform(2, 7)) + rng.choice([0.0, 0.5]))
        z = float(rng.uniform(-8, 300))
        if s > 100_000 and abs(z) < 5:
            continue
        x = s + z * math.sqrt(s)
        if x > 0:
            cases.append((x, s))
    return cases


@pytest.mark.parametrize(("x", "s"), _random_gamma_cases(30, seed=8))
def test_gamma_sf_random_grid(x: float, s: float) -> None:
    ref = ref_log_gamma_sf(x, s)
    err = _rel_err(log_gamma_sf(x, s), ref)
    _WORST["gamma"] = max(_WORST.get("gamma", 0.0), err)
    assert err <= REL_TOL, (x, s, float(ref / LN10), err)


def test_design_reference_points() -> None:
    assert round(log10_binom_sf(270_000, 1_000_000, 0.25), 1) == -457.4
    assert round(log10_gamma_sf(1.05e6, 1_000_000), 1) == -527.5
    # the z approximation is anti-conservative there by decades: cross-check only
    z = z_binom(270_000, 1_000_000, 0.25)
    assert z == pytest.approx(46.188, abs=1e-3)
    assert z_gamma(1.05e6, 1e6) == pytest.approx(50.0)


def test_edge_cases() -> None:
    assert log_binom_sf(0, 5, 0.5) == 0.0
    assert log_binom_sf(-3, 5, 0.5) == 0.0
    assert log_binom_sf(6, 5, 0.5) == -math.inf
    assert log_binom_sf(0, 0, 0.5) == 0.0
    assert log_binom_sf(5, 5, 0.5) == pytest.approx(5 * math.log(0.5), rel=1e-15)
    assert log_gamma_sf(0.0, 3) == 0.0
    assert log_gamma_sf(0.0, 0) == 0.0
    assert log_gamma_sf(1.0, 0) == -math.inf
    assert log_gamma_sf(700.0, 1) == pytest.approx(-700.0, rel=1e-14)
    assert log_gamma_sf(1e12, 1) == pytest.approx(-1e12, rel=1e-14)


@pytest.mark.parametrize(
    "call",
    [
        lambda: log_binom_sf(1, 10, 0.0),
        lambda: log_binom_sf(1, 10, 1.0),
        lambda: log_binom_sf(1, 10, math.nan),
        lambda: log_binom_sf(1.5, 10, 0.5),  # type: ignore[arg-type]
        lambda: log_binom_sf(1, -1, 0.5),
        lambda: log_binom_sf(1, 10.5, 0.5),  # type: ignore[arg-type]
        lambda: log_gamma_sf(-1.0, 3),
        lambda: log_gamma_sf(1.0, -3),
        lambda: log_gamma_sf(math.nan, 3),
        lambda: z_binom(1, 0, 0.5),
        lambda: z_gamma(1.0, 0),
    ],
)
def test_invalid_arguments_raise(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call()


def test_mid_p_against_mpmath() -> None:
    for k, n, p in [(5, 10, 0.5), (270_000, 1_000_000, 0.25), (600_000, 1_000_000, 0.25), (0, 7, 0.3), (7, 7, 0.3)]:
        sf = ref_log_binom_sf(k, n, p) if k >= 1 else mp.mpf(0)
        ref = sf + mp.log1p(-mp.exp(ref_log_binom_pmf(k, n, p) - sf) / 2)
        assert _rel_err(log_binom_sf_mid(k, n, p), ref) <= REL_TOL
        assert log10_binom_sf_mid(k, n, p) == pytest.approx(float(ref / LN10), rel=REL_TOL)
    assert log_binom_sf_mid(-1, 5, 0.5) == 0.0
    assert log_binom_sf_mid(6, 5, 0.5) == -math.inf


@pytest.mark.parametrize(("n", "p"), [(1, 0.5), (5, 0.25), (20, 0.25), (50, 0.1), (200, 0.6)])
def test_mid_p_is_calibrated_and_plain_tail_conservative(n: int, p: float) -> None:
    k = np.arange(n + 1)
    pmf = np.exp(log_binom_pmf_array(k, n, p))
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    mean_mid = float(np.sum(pmf * np.exp(log_binom_sf_mid_array(k, n, p))))
    mean_sf = float(np.sum(pmf * np.exp(log_binom_sf_array(k, n, p))))
    assert mean_mid == pytest.approx(0.5, abs=1e-12)  # exactly 1/2 under H0
    # E[P(X >= k)] = 1/2 + (1/2) sum pmf^2 > 1/2: conservative
    assert mean_sf == pytest.approx(0.5 + 0.5 * float(np.sum(pmf**2)), abs=1e-12)
    assert mean_sf > 0.5


def test_arrays_broadcast_and_match_scalars() -> None:
    rng = np.random.default_rng(1)
    n = rng.integers(1, 10**7, size=60)
    k = np.minimum(n, np.round(n * rng.uniform(0.0, 0.6, size=60))).astype(np.int64)
    got = log_binom_sf_array(k, n, 0.25)
    assert got.shape == (60,)
    assert np.array_equal(got, np.array([log_binom_sf(int(a), int(b), 0.25) for a, b in zip(k, n, strict=True)]))
    x = n * rng.uniform(0.5, 1.5, size=60)
    got = log_gamma_sf_array(x, n)
    assert np.array_equal(got, np.array([log_gamma_sf(float(a), float(b)) for a, b in zip(x, n, strict=True)]))
    grid = log10_binom_sf_array(np.arange(4)[:, None], np.array([3, 5]), 0.5)
    assert grid.shape == (4, 2)
    assert grid[3, 0] == pytest.approx(3 * math.log10(0.5))
    assert log10_gamma_sf_array([0.0, 1.0], 1).tolist() == pytest.approx([0.0, -1 / math.log(10)])
    assert log_binom_sf_array([], [], 0.5).shape == (0,)
    assert to_log10(math.log(1e-5)) == pytest.approx(-5.0)
    assert isinstance(to_log10(-1.0), float)


def test_curve_of_1e4_points_is_fast_and_monotone() -> None:
    """log10 p against tokens scored (cumulative), as drawn for each test: 1e4 points, well under a second."""
    rng = np.random.default_rng(0)
    green = rng.random(1_000_000) < 0.27
    n = np.arange(100, 1_000_001, 100)
    k = np.cumsum(green)[n - 1]
    scores = rng.exponential(size=1_000_000) * 1.05
    x = np.cumsum(scores)[n - 1]
    log10_binom_sf_array(k[:10], n[:10], 0.25)  # warm-up
    t0 = time.perf_counter()
    curve_b = log10_binom_sf_array(k, n, 0.25)
    curve_mid = log_binom_sf_mid_array(k, n, 0.25)
    curve_g = log10_gamma_sf_array(x, n)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, elapsed  # measured ~0.1 s on 2 cores
    assert np.all(np.isfinite(curve_b)) and np.all(np.isfinite(curve_g)) and np.all(np.isfinite(curve_mid))
    assert curve_b[-1] < -400 and curve_g[-1] < -400
    for i in (0, 4999, 9999):
        assert curve_b[i] == log10_binom_sf(int(k[i]), int(n[i]), 0.25)


def test_tail_results() -> None:
    r = binomial_tail_test(270_000, 1_000_000, 0.25)
    assert r.pvalue == 0.0 and round(r.log10_pvalue, 1) == -457.4
    assert r.log10_mid_pvalue < r.log10_pvalue
    assert r.h0["p"] == 0.25 and r.k == 270_000
    g = gamma_tail_test(1.05e6, 1e6)
    assert round(g.log10_pvalue, 1) == -527.5 and g.test == "gamma_tail"
    small = binomial_tail_test(6, 10, 0.5)
    assert small.pvalue == pytest.approx(386 / 1024, rel=1e-14)


def test_report_worst_error() -> None:
    """Runs last in this module: print the largest relative errors seen (pytest -s shows them)."""
    print(f"worst relative error in log p: {_WORST}")
