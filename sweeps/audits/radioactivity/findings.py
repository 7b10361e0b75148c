"""The findings table: the paper's claims as data, each with our number and a verdict from the folded test rows.

A claim is a `Claim(name, paper, measure)`; `measure(evidence)` returns (ours, verdict), or None when this sweep
cannot tell (the row then reads "not in this sweep", or is left out for an `optional` claim). Adding a claim is one
entry in `CLAIMS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sweeps.audits.radioactivity.frames import (
    NOT_DETECTED,
    NOT_IN_SWEEP,
    TARGET,
    WRONG_KEY,
    at_base,
    scoring,
    test_kinds,
    tokens_to_reach,
)
from sweeps.audits.radioactivity.steps import BASE_MODEL_EPOCHS
from sweeps.engine.grid import Grid


def _per_rho(tests: pd.DataFrame, base: Mapping[str, Any], test: str) -> pd.Series:
    """Mean log10 p of `test` per rho > 0 at the base recipe (fine-tuned models only)."""
    rows = at_base(tests, base, "rho")
    rows = rows[(rows["test"] == test) & (rows["epochs"] != BASE_MODEL_EPOCHS) & (rows["rho"] > 0)]
    return rows.groupby("rho")["log10_pvalue"].mean().sort_index()


def _shortfall(tests: pd.DataFrame, base: Mapping[str, Any], test: str, rho: float, log10p: float) -> str:
    """Why a test misses p < 1e-5 at `rho`, in tokens: how many it scored and how many it would need."""
    if log10p <= TARGET:
        return ""
    rows = at_base(tests, base, "rho")
    rows = rows[(rows["test"] == test) & (rows["rho"] == rho) & (rows["epochs"] != BASE_MODEL_EPOCHS)]
    if not len(rows) or "n_scored" not in rows.columns:
        return ""
    scored = float(rows["n_scored"].mean())
    needed = []
    for _, row in rows.iterrows():
        curve = json.loads(row["curve"]) if isinstance(row.get("curve"), str) else None
        needed.append(tokens_to_reach(curve, row["n_scored"], row["log10_pvalue"])[0])
    if any(n is None for n in needed):
        return f"; no signal in {scored:,.0f} tokens scored"
    return f"; {scored:,.0f} tokens scored, about {sum(needed) / len(needed):,.0f} needed"


def _fmt(values: pd.Series) -> str:
    return ", ".join(f"rho={rho:g}: {v:.1f}" for rho, v in values.items())


def _compare(tests: pd.DataFrame, base: Mapping[str, Any], better: str, worse: str) -> tuple[str, str]:
    """Our number and verdict for "test `better` is more powerful than test `worse`" over the rho > 0 rows."""
    a, b = _per_rho(tests, base, better), _per_rho(tests, base, worse)
    common = a.index.intersection(b.index)
    if not len(common):
        return NOT_IN_SWEEP, NOT_IN_SWEEP
    a, b = a[common], b[common]
    signal = (a < NOT_DETECTED) | (b < NOT_DETECTED)
    if not signal.any():
        return f"{better} {_fmt(a)}; {worse} {_fmt(b)}", "undecided (neither detects)"
    wins = int((a[signal] < b[signal]).sum())
    number = f"{better} {_fmt(a)}; {worse} {_fmt(b)}"
    if wins == int(signal.sum()):
        return number, "holds"
    return number, "holds mostly" if wins * 2 > int(signal.sum()) else "does not hold"


def _pick(kinds: pd.DataFrame, **want: Any) -> str | None:
    rows = kinds
    for name, value in want.items():
        rows = rows[rows[name] == value]
    return None if not len(rows) else str(rows["test"].iloc[0])


@dataclass(frozen=True)
class Evidence:
    """What every claim reads: the folded test rows, the base point, the grid, one row per test kind, and the
    headline test (open, unsupervised, no phi; else the first test)."""

    tests: pd.DataFrame
    base: Mapping[str, Any]
    grid: Grid
    kinds: pd.DataFrame
    headline_test: str | None

    def per_rho(self, test: str) -> pd.Series:
        """Mean log10 p of `test` per rho > 0 at the base recipe."""
        return _per_rho(self.tests, self.base, test)


Verdict = tuple[str, str]


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: its name, what the paper says, and how this sweep measures it."""

    name: str
    paper: str
    measure: Callable[[Evidence], Verdict | None]
    optional: bool = False  # left out of the table (not "not in this sweep") when it cannot be measured


def _rho_trend(ev: Evidence) -> Verdict | None:
    values = ev.per_rho(ev.headline_test) if ev.headline_test else pd.Series(dtype=float)
    if len(values) < 2:
        return None
    steps = values.diff().dropna()
    monotone = bool((steps <= 1.0).all())  # allow one decade of noise between neighbouring rho
    detected_top = bool(values.iloc[-1] < NOT_DETECTED)
    verdict = "holds" if monotone and detected_top else ("partly" if detected_top else "does not hold")
    return f"{ev.headline_test}: {_fmt(values)}", verdict


def _small_rho_of(ev: Evidence, test: str | None) -> Verdict | None:
    """Does `test` reach p < 1e-5 at rho = 5% and 10%, and if not, how many tokens short."""
    values = ev.per_rho(test) if test else pd.Series(dtype=float)
    at = values[values.index.isin([0.05, 0.1])]
    if len(values) < 2 or not len(at):
        return None
    hit = "; ".join(
        f"rho={r:g} {'reaches' if v <= TARGET else 'misses'} p<1e-5 "
        f"({v:.1f}{_shortfall(ev.tests, ev.base, str(test), r, v)})"
        for r, v in at.items()
    )
    verdict = "holds" if (at <= TARGET).all() else ("partly" if (at <= TARGET).any() else "does not hold")
    return f"{test}: {hit}", verdict


def _small_rho(ev: Evidence) -> Verdict | None:
    return _small_rho_of(ev, ev.headline_test)


def _small_rho_reference(ev: Evidence) -> Verdict | None:
    return _small_rho_of(ev, _pick(ev.kinds, setting="open-ref", supervised=False, phi=False))


def _pair_verdict(ev: Evidence, pair: tuple[str, str] | None) -> Verdict | None:
    if pair is None:
        return None
    ours, verdict = _compare(ev.tests, ev.base, *pair)
    return None if ours == NOT_IN_SWEEP else (ours, verdict)


def _open_vs_closed(ev: Evidence) -> Verdict | None:
    """Same supervision, both without phi when possible."""
    for supervised in (True, False):
        for phi in (False, True):
            open_t = _pick(ev.kinds, setting="open", supervised=supervised, phi=phi)
            closed_t = _pick(ev.kinds, setting="closed", supervised=supervised, phi=phi) or _pick(
                ev.kinds, setting="closed", supervised=supervised
            )
            if open_t and closed_t:
                return _pair_verdict(ev, (open_t, closed_t))
    return None


def _supervision(ev: Evidence) -> Verdict | None:
    for setting in ("open", "closed"):
        sup = _pick(ev.kinds, setting=setting, supervised=True, phi=False)
        unsup = _pick(ev.kinds, setting=setting, supervised=False, phi=False)
        if sup and unsup:
            return _pair_verdict(ev, (sup, unsup))
    return None


def _phi(ev: Evidence) -> Verdict | None:
    for _, row in ev.kinds[ev.kinds["phi"]].iterrows():
        plain = _pick(ev.kinds, setting=row["setting"], supervised=row["supervised"], phi=False)
        if plain:
            return _pair_verdict(ev, (str(row["test"]), plain))
    return None


def _beats_top1(ev: Evidence, setting: str) -> Verdict | None:
    """The first test of `setting` against the paper's top-1 reading test of the same supervision and phi."""
    for _, row in ev.kinds[ev.kinds["setting"] == setting].iterrows():
        top1 = _pick(ev.kinds, setting="open", supervised=row["supervised"], phi=row["phi"])
        if top1:
            return _pair_verdict(ev, (str(row["test"]), top1))
    return None


def _distribution(ev: Evidence) -> Verdict | None:
    return _beats_top1(ev, "open-dist")


def _reference(ev: Evidence) -> Verdict | None:
    return _beats_top1(ev, "open-ref")


def _window(ev: Evidence) -> Verdict | None:
    if "k" not in ev.grid.varied_axes() or not ev.headline_test:
        return None
    rows = at_base(ev.tests[ev.tests["epochs"] != BASE_MODEL_EPOCHS], ev.base, "k")
    per_k = rows[rows["test"] == ev.headline_test].groupby("k")["log10_pvalue"].mean().sort_index()
    if len(per_k) < 2:
        return None
    ours = f"{ev.headline_test} at rho={ev.base['rho']:g}: " + ", ".join(f"k={k}: {v:.1f}" for k, v in per_k.items())
    verdict = (
        "holds"
        if per_k.iloc[0] < per_k.iloc[-1] and per_k.is_monotonic_increasing
        else ("partly" if per_k.iloc[0] < per_k.iloc[-1] else "does not hold")
    )
    return ours, verdict


def _mia_supervision(ev: Evidence) -> Verdict | None:
    mia = scoring(ev.tests, "samples") if "setting" in ev.tests.columns else ev.tests.iloc[0:0]
    if not len(mia) or "d" not in mia.columns:
        return None
    tuned = at_base(mia, ev.base, "rho")
    tuned = tuned[(tuned["epochs"] != BASE_MODEL_EPOCHS) & (tuned["rho"] > 0)]
    d1 = tuned[tuned["d"] >= 0.5].groupby("rho")["log10_pvalue"].mean().sort_index()
    d0 = tuned[tuned["d"] <= 0.01].groupby("rho")["log10_pvalue"].mean().sort_index()
    if not len(d1) or not len(d0):
        return None
    verdict = (
        "holds"
        if d1.min() < NOT_DETECTED and (d0 > NOT_DETECTED).all()
        else ("does not hold" if (d0 <= NOT_DETECTED).any() else "undecided (d=1 not detected)")
    )
    return f"d=1 {_fmt(d1)}; d=0 {_fmt(d0)}", verdict


def _controls(ev: Evidence) -> Verdict | None:
    tests = ev.tests
    controls = tests[(tests["rho"] == 0) | tests["test"].str.endswith(f"/{WRONG_KEY}")]
    values = pd.to_numeric(controls["log10_pvalue"], errors="coerce").dropna()
    if not len(values):
        return None
    below = int((values < NOT_DETECTED).sum())
    ours = f"{below}/{len(values)} control cells below -2 (FPR {below / len(values):.2f}); min {values.min():.1f}"
    # under H0 each cell is below -2 with probability <= 0.01: more than 1 + 5% of the cells is a failure
    verdict = "holds" if below <= 1 + 0.05 * len(values) and values.min() > -4 else "does not hold"
    return ours, verdict


CLAIMS: tuple[Claim, ...] = (
    Claim("detection grows with rho", "p falls as rho grows (Table 2)", _rho_trend),
    Claim(
        "open unsupervised detects small rho", "p < 1e-5 at rho = 5% (open, unsupervised)", _small_rho, optional=True
    ),
    Claim("open beats closed", "reading mode is more powerful than B's answers (Fig. 5)", _open_vs_closed),
    Claim("supervised beats unsupervised", "knowing B's training data gives more power (Table 2)", _supervision),
    Claim("phi adds power", "filtering on phi raises power (Sec. 5)", _phi),
    Claim(
        "distribution-based reading beats top-1 reading",
        "(not in the paper: radio's open-dist test against the paper's top-1 reading test)",
        _distribution,
        optional=True,
    ),
    Claim(
        "reference-calibrated reading beats top-1 reading",
        "(not in the paper: radio's open-ref test, B's excess over a key-free reference, against the paper's top-1 "
        "reading test)",
        _reference,
        optional=True,
    ),
    Claim(
        "open unsupervised detects small rho, reference-calibrated",
        "p < 1e-5 at rho = 5% (open, unsupervised; here with radio's open-ref test)",
        _small_rho_reference,
        optional=True,
    ),
    Claim("smaller k is more radioactive", "radioactivity falls as k grows (Fig. 6)", _window),
    Claim("MIA needs supervision", "MIA detects at d=1, gives nothing at d=0 (Sec. 6)", _mia_supervision),
    Claim("controls uniform", "rho=0, base model and wrong keys: p uniform (FPR 0.01 at 0.01)", _controls),
)


def findings(
    tests: pd.DataFrame, base: Mapping[str, Any], grid: Grid, claims: tuple[Claim, ...] = CLAIMS
) -> pd.DataFrame:
    """The paper's claims (one row each) with our number and a verdict, from the folded test rows."""
    kinds = test_kinds(scoring(tests, "tokens"))
    headline_test = _pick(kinds, setting="open", supervised=False, phi=False) or (
        str(kinds["test"].iloc[0]) if len(kinds) else None
    )
    evidence = Evidence(tests, base, grid, kinds, headline_test)
    out = []
    for claim in claims:
        measured = claim.measure(evidence)
        if measured is None and claim.optional:
            continue
        ours, verdict = measured or (NOT_IN_SWEEP, NOT_IN_SWEEP)
        out.append({"claim": claim.name, "paper": claim.paper, "ours": ours, "verdict": verdict})
    return pd.DataFrame(out, columns=["claim", "paper", "ours", "verdict"])
