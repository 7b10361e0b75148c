"""Chernoff bounds on weighted null sums: reference values against independent computations, and validity."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import optimize, stats

from radio.stats.chernoff import WeightProfile, chernoff_log_sf, chernoff_tail_test, prefix_profiles
from radio.stats.tails import log_binom_sf, log_gamma_sf


def _kl(q: float, p: float) -> float:
    """Bernoulli relative entropy KL(q || p) (the classical Chernoff exponent of the binomial)."""
    out = q * math.log(q / p)
    return out + ((1 - q) * math.log((1 - q) / (1 - p)) if q < 1 else 0.0)


@pytest.mark.parametrize("t", [260, 300, 400, 999])
def test_equal_weights_give_the_binomial_chernoff_bound_above_the_exact_tail(t: int) -> None:
    n, p = 1000, 0.25
    bound, _ = chernoff_log_sf(float(t), WeightProfile.of(np.ones(n)), "bernoulli", p)
    assert bound == pytest.approx(-n * _kl(t / n, p), rel=1e-9)
    assert bound >= log_binom_sf(t, n, p)


def test_all_green_is_the_exact_probability_and_equal_exponentials_the_gamma_bound() -> None:
    n, p = 50, 0.25
    bound, _ = chernoff_log_sf(float(n), WeightProfile.of(np.ones(n)), "bernoulli", p)
    assert bound == pytest.approx(n * math.log(p))  # P(all green) exactly
    for t in (1100.0, 1500.0, 3000.0):
        x = t / 1000
        bound, _ = chernoff_log_sf(t, WeightProfile.of(np.ones(1000)), "exponential")
        assert bound == pytest.approx(-1000 * (x - 1 - math.log(x)), rel=1e-9)
        assert bound >= log_gamma_sf(t, 1000)


def test_all_green_with_uneven_weights_is_far_in_the_tail_not_clamped_to_one() -> None:
    """T = sum a with binned (upper-edge) weights puts the minimiser far out: the bound must not overflow to 1."""
    a = np.exp(np.random.default_rng(0).normal(-4.0, 3.0, size=2000)).clip(max=1.0)  # weights over many decades
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        bound, lam = chernoff_log_sf(float(a.sum()), WeightProfile.of(a), "bernoulli", 0.25)
    unbinned = -lam * a.sum() + np.logaddexp(math.log1p(-0.25), math.log(0.25) + lam * a).sum()  # same lambda
    assert lam > 1e3 and unbinned <= bound < -2000  # binned upwards: above the exact exponent; P(T = sum a) = 0.25^2000


def _exact_unbinned(a: np.ndarray, t: float, draws: str, p: float = 0.25) -> float:
    """The Chernoff exponent minimised directly over the unbinned weights, of either sign (scipy's bounded scalar
    minimiser)."""
    if draws == "bernoulli":
        f = lambda lam: -lam * t + np.logaddexp(math.log1p(-p), math.log(p) + lam * a).sum()  # noqa: E731
        upper = 200.0 / np.abs(a).max()
    else:
        f = lambda lam: -lam * t - np.log1p(-lam * a).sum()  # noqa: E731
        upper = (1 - 1e-12) / a.max()
    return float(optimize.minimize_scalar(f, bounds=(0.0, upper), method="bounded", options={"xatol": 1e-12}).fun)


@pytest.mark.parametrize("draws", ["bernoulli", "exponential"])
def test_binned_bound_is_above_the_unbinned_one_and_close_to_it(draws: str) -> None:
    rng = np.random.default_rng(0)
    a = rng.random(20000) ** 4
    mean = a.sum() * (0.25 if draws == "bernoulli" else 1.0)
    for z in (2.0, 5.0, 10.0):
        sd = math.sqrt((a**2).sum() * (0.25 * 0.75 if draws == "bernoulli" else 1.0))
        t = mean + z * sd
        binned, _ = chernoff_log_sf(t, WeightProfile.of(a), draws, 0.25)
        exact = _exact_unbinned(a, t, draws)
        assert exact - 1e-6 <= binned <= exact * (1 - 3e-3) + 1e-9  # valid, and within 0.3% of the exponent
        assert binned <= -(z**2) / 2 * 0.8  # and not far from the normal exponent (sanity)


def test_brute_force_small_cases_independent_and_fixed_size_subsets() -> None:
    """Exact tails by enumeration: independent Bernoulli(p) and a uniform subset of fixed size, both below the bound."""
    rng = np.random.default_rng(1)
    n, size = 12, 3
    a = rng.random(n)
    profile = WeightProfile.of(a)
    masks = np.array(list(itertools.product([0, 1], repeat=n)), dtype=float)
    sums = masks @ a
    ones = masks.sum(axis=1)
    p = size / n
    prob_independent = p**ones * (1 - p) ** (n - ones)
    fixed = ones == size
    for t in np.quantile(sums[fixed], [0.5, 0.8, 0.95, 0.99, 1.0]):
        bound = chernoff_log_sf(float(t), profile, "bernoulli", p)[0]
        assert math.log(prob_independent[sums >= t - 1e-12].sum()) <= bound + 1e-12
        assert math.log(np.mean(sums[fixed] >= t - 1e-12)) <= bound + 1e-12


def test_brute_force_weighted_exponentials() -> None:
    """P(sum a_i E_i > t) for distinct a_i in closed form (hypoexponential), below the bound."""
    a = np.array([0.3, 0.7, 1.1, 1.9, 2.6])
    profile = WeightProfile.of(a)
    for t in (8.0, 15.0, 30.0):
        coef = [np.prod([a[i] / (a[i] - a[j]) for j in range(a.size) if j != i]) for i in range(a.size)]
        exact = sum(c * math.exp(-t / ai) for c, ai in zip(coef, a, strict=True))
        assert math.log(exact) <= chernoff_log_sf(t, profile, "exponential")[0]


def test_far_tail_is_finite_and_not_clamped() -> None:
    a = np.full(1_000_000, 0.5)
    result = chernoff_tail_test(0.5 * 270_000, WeightProfile.of(a), "bernoulli", 0.25)
    assert result.log10_pvalue == pytest.approx(-1_000_000 * _kl(0.27, 0.25) / math.log(10), rel=1e-9)
    assert result.log10_pvalue < -400 and result.pvalue == 0.0 and math.isfinite(result.log10_pvalue)
    assert result.mean == pytest.approx(125_000) and result.n_terms == 1_000_000
    assert "Chernoff" in result.h0["bound"]


def test_at_or_below_the_mean_the_bound_is_one_and_above_the_maximum_zero() -> None:
    profile = WeightProfile.of(np.array([0.5, 1.0, 0.0]))
    assert profile.n == 2 and profile.total == 1.5
    assert chernoff_log_sf(0.2, profile, "bernoulli", 0.25)[0] == 0.0
    assert chernoff_log_sf(1.6, profile, "bernoulli", 0.25)[0] == -math.inf
    assert chernoff_log_sf(0.0, WeightProfile.of(np.zeros(3)), "exponential")[0] == 0.0
    with pytest.raises(ValueError, match="weights"):
        WeightProfile.of(np.array([-1.0]))


def test_prefix_profiles_share_a_valid_grid() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(5000) ** 3
    stops = [10, 500, 5000]
    for stop, prefix in zip(stops, prefix_profiles(a, stops), strict=True):
        assert prefix.n == stop and prefix.total == pytest.approx(a[:stop].sum())
        assert prefix.largest == a[:stop].max()
        assert np.dot(prefix.counts, prefix.edges) >= prefix.total
        t = min(prefix.mean("bernoulli", 0.25) + 4 * math.sqrt(prefix.variance("bernoulli", 0.25)), 0.9 * prefix.total)
        assert chernoff_log_sf(t, prefix, "bernoulli", 0.25)[0] >= _exact_unbinned(a[:stop], t, "bernoulli") - 1e-6


def test_bound_over_random_null_draws_is_conservative() -> None:
    """Monte Carlo: P(bound <= alpha) <= alpha for independent Bernoulli and Exp(1) draws."""
    rng = np.random.default_rng(3)
    a = rng.random(400) ** 2
    profile = WeightProfile.of(a)
    green = rng.random((1500, a.size)) < 0.25
    logp = np.array([chernoff_log_sf(float(a @ g), profile, "bernoulli", 0.25)[0] for g in green])
    assert np.mean(logp <= math.log(0.05)) <= 0.05 and np.mean(logp <= math.log(0.2)) <= 0.2
    scores = rng.exponential(size=(1500, a.size))
    logp = np.array([chernoff_log_sf(float(a @ s), profile, "exponential")[0] for s in scores])
    assert np.mean(logp <= math.log(0.05)) <= 0.05 and np.mean(logp <= math.log(0.2)) <= 0.2
    assert stats.kstest(np.exp(logp), "uniform").statistic > 0  # p-values exist over the whole range


@pytest.mark.parametrize("draws", ["bernoulli", "exponential"])
def test_signed_weights_bound_is_valid_and_tight(draws: str) -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(0.0, 1.0, 20000) * rng.random(20000) ** 3  # both signs, over several decades
    with pytest.raises(ValueError, match="signed=True"):
        WeightProfile.of(a)
    profile = WeightProfile.of(a, signed=True)
    assert profile.n == a.size and profile.total == pytest.approx(a.sum()) and profile.largest == a.max()
    assert profile.positive_total == pytest.approx(a[a > 0].sum())
    assert profile.edges.min() < 0.0 < profile.edges.max()
    e_x = 0.25 if draws == "bernoulli" else 1.0
    sd = math.sqrt(profile.variance(draws, 0.25))
    assert profile.mean(draws, 0.25) == pytest.approx(e_x * a.sum())
    for z in (2.0, 5.0, 10.0):
        t = profile.mean(draws, 0.25) + z * sd
        binned, _ = chernoff_log_sf(t, profile, draws, 0.25)
        exact = _exact_unbinned(a, t, draws)
        assert exact - 1e-6 <= binned <= exact * (1 - 3e-3) + 1e-9
        assert binned <= -(z**2) / 2 * 0.8


def test_signed_weights_brute_force_and_extremes() -> None:
    """Exact tails by enumeration of 2^12 independent Bernoulli draws, below the bound; the largest value T can
    take (every positive weight green, every negative red) and beyond."""
    rng = np.random.default_rng(4)
    a = rng.normal(size=12)
    p = 0.25
    profile = WeightProfile.of(a, signed=True)
    masks = np.array(list(itertools.product([0, 1], repeat=a.size)), dtype=float)
    sums = masks @ a
    ones = masks.sum(axis=1)
    prob = p**ones * (1 - p) ** (a.size - ones)
    for t in np.quantile(sums, [0.5, 0.8, 0.95, 0.99, 0.999]):
        if t > profile.mean("bernoulli", p):
            assert math.log(prob[sums >= t - 1e-12].sum()) <= chernoff_log_sf(float(t), profile, "bernoulli", p)[0]
    top = float(a[a > 0].sum())
    at_top = chernoff_log_sf(top, profile, "bernoulli", p)[0]
    assert math.log(prob[sums >= top - 1e-12].sum()) <= at_top + 1e-9 < 0.0
    assert chernoff_log_sf(top + 1e-6, profile, "bernoulli", p)[0] == -math.inf
    negative = WeightProfile.of(-np.abs(a), signed=True)  # T <= 0 always
    assert chernoff_log_sf(0.5, negative, "bernoulli", p)[0] == -math.inf
    assert chernoff_log_sf(0.5, negative, "exponential")[0] == -math.inf
    assert chernoff_log_sf(-0.1, negative, "exponential")[0] < 0.0


def test_signed_weights_monte_carlo_tail_below_the_bound() -> None:
    """Independent Exp(1) draws with signed weights: the simulated tail at the bound's 1e-3 point is below 1e-3."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=40)
    profile = WeightProfile.of(a, signed=True)
    draws = rng.exponential(size=(200_000, a.size)) @ a
    ts = np.linspace(profile.mean("exponential"), draws.max(), 200)
    bounds = np.array([chernoff_log_sf(float(t), profile, "exponential")[0] for t in ts])
    t = ts[np.argmax(bounds <= math.log(1e-3))]
    assert np.mean(draws >= t) <= 1e-3
