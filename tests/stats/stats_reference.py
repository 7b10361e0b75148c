"""Independent high-precision references (mpmath, 50 digits) for the tails in `radio.stats`.

Written from the definitions, sharing no code with the package: log pmf from `mpmath.loggamma` (no
cancellation at 50 digits even for n = 1e9), times the tail summed term by term from the pmf ratio, in
multiprecision, until the terms fall below 1e-45 of the sum. For small parameters `mpmath.betainc` /
`mpmath.gammainc` serve as a second, unrelated check of these sums.
"""

from __future__ import annotations

import mpmath as mp

mp.mp.dps = 50
_TOL = mp.mpf(10) ** -45
LN10 = mp.log(10)


def ref_log_binom_pmf(k: int, n: int, p: float) -> mp.mpf:
    """log P(Binomial(n, p) = k), p taken as the exact binary value of the float."""
    p_ = mp.mpf(p)
    return mp.loggamma(n + 1) - mp.loggamma(k + 1) - mp.loggamma(n - k + 1) + k * mp.log(p_) + (n - k) * mp.log1p(-p_)


def ref_log_binom_sf(k: int, n: int, p: float) -> mp.mpf:
    """Natural log of P(Binomial(n, p) >= k) for 1 <= k <= n."""
    p_ = mp.mpf(p)
    q_ = 1 - p_
    if k > (n + 1) * p_:  # upper side: P(X >= k) = pmf(k) * sum_j prod ratio, summed upward
        total = term = mp.mpf(1)
        j, r = k, p_ / q_
        while j < n:
            term *= mp.mpf(n - j) / (j + 1) * r
            j += 1
            total += term
            if term < total * _TOL:
                break
        return ref_log_binom_pmf(k, n, p) + mp.log(total)
    # lower side: P(X <= k - 1) summed downward, then log(1 - that)
    total = term = mp.mpf(1)
    j, r = k - 1, q_ / p_
    while j > 0:
        term *= mp.mpf(j) / (n - j + 1) * r
        j -= 1
        total += term
        if term < total * _TOL:
            break
    return mp.log1p(-mp.exp(ref_log_binom_pmf(k - 1, n, p)) * total)


def ref_log_binom_sf_betainc(k: int, n: int, p: float) -> mp.mpf:
    """Natural log of P(Binomial(n, p) >= k) = I_p(k, n - k + 1) via mpmath.betainc (small n only)."""
    return mp.log(mp.betainc(k, n - k + 1, 0, mp.mpf(p), regularized=True))


def ref_log_gamma_sf(x: float, s: float) -> mp.mpf:
    """Natural log of Q(s, x) = P(Gamma(s, 1) >= x), for s >= 100 (below, use `ref_log_gamma_sf_mpmath`)."""
    x_, s_ = mp.mpf(x), mp.mpf(s)
    if x_ > s_:
        # Q = x^(s-1) e^-x / Gamma(s) * sum_j (s-1)(s-2)...(s-j) / x^j (exact and finite for integer s,
        # asymptotic otherwise, its terms reaching 1e-45 of the sum long before they could grow for x > s)
        total = term = mp.mpf(1)
        j = 0
        while True:
            term *= (s_ - 1 - j) / x_
            j += 1
            total += term
            if abs(term) < total * _TOL:
                break
        return -x_ + (s_ - 1) * mp.log(x_) - mp.loggamma(s_) + mp.log(total)
    # P = x^s e^-x / Gamma(s + 1) * sum_j x^j / ((s+1)...(s+j)), then log(1 - P)
    total = term = mp.mpf(1)
    j = 0
    while True:
        j += 1
        term *= x_ / (s_ + j)
        total += term
        if term < total * _TOL:
            break
    return mp.log1p(-mp.exp(-x_ + s_ * mp.log(x_) - mp.loggamma(s_ + 1)) * total)


def ref_log_gamma_sf_mpmath(x: float, s: float) -> mp.mpf:
    """Natural log of Q(s, x) via mpmath.gammainc (small s only: it does not converge for large s)."""
    return mp.log(mp.gammainc(mp.mpf(s), mp.mpf(x), mp.inf, regularized=True))
