"""Tables, plots, trial names and summaries of the ablation sweep, from the engine's results frame (a row per test).

Every number in the p-value tables is log10 p: -6 reads as p = 1e-6; a control above -2 (p > 0.01) is "not
detected". Recorded tables are numeric (`<test> mean`, `<test> std` columns, so that they sort and plot); the
console prints the same values as "mean ± std".

- `pvalues`: per model (each rho at the base recipe, and the base model) and test; `<test>/wrong-key` columns are
  the same test under wrong keys (the mean over keys; min and max are in each trial's metrics);
- `ablation_<axis>`: the same for every axis varied one at a time (from the preset or the command line);
- `tokens_scored`: the deduplicated tokens each test scored; `utility`: held-out perplexity per model (corpus text
  and A's held-out answers);
- `power`: per model and test, tokens scored, log10 p and the tokens needed to reach p < 1e-5 (read off the
  test's log10 p vs tokens curve, or extrapolated linearly in tokens when the curve does not reach it);
- `findings`: the paper's claims, one row each, with our number and a verdict (`not in this sweep` when the sweep
  has no rows for it);
- `reproduction`, `reproduction_setup`: the paper's numbers beside ours and what differs in the set-up
  (`reproduction.py`);
- plots: log10 p against rho and against every varied axis, log10 p against tokens scored for every test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from sweeps.audits.radioactivity.config import AXES
from sweeps.audits.radioactivity.reproduction import reproduction_table, setup_table
from sweeps.audits.radioactivity.steps import BASE_MODEL_EPOCHS
from sweeps.engine.grid import Grid
from sweeps.engine.outcomes import Report, TrialOutcome
from sweeps.engine.tables import line_plot, mean_std_columns, mean_std_table, new_figure, rows_at_base

WRONG_KEY = "wrong-key"
NOT_DETECTED = -2.0  # log10 p above this (p > 0.01): the control cells' threshold
STRONG = -6.0  # the paper's scale of evidence (p < 1e-6)
TARGET = -5.0  # the paper's headline threshold (p < 1e-5)
NOT_IN_SWEEP = "not in this sweep"
CAPTION = "Values are log10 p (mean and std over seeds): -6 reads as p = 1e-6; controls should stay above -2."
DESCRIPTION = """Radioactivity sweep: was model B trained on text written by our watermarked model A?

Tables (artifacts `tables/`, also as MLflow tables; every p-value cell is **log10 p**):
- `pvalues`: one row per model (each rho at the base recipe, and Bob's base model); `<test> mean` / `<test> std`
  over seeds. `<test>/wrong-key` columns: the same test under wrong keys (mean over keys).
- `ablation_<axis>`: the same for each axis varied one at a time around the base point.
- `tokens_scored`: deduplicated tokens scored per test (power grows with it). `utility`: held-out perplexity on
  corpus text (what B knew) and on A's held-out answers (how well B fits them), per model.
- `power`: tokens scored, log10 p and tokens needed for p < 1e-5 per model and test.
- `findings`: the paper's claims with our numbers and a verdict.
- `reproduction`: the paper's numbers beside ours, test by test; `reproduction_setup`: what differs in the set-up.

Reading it: controls (rho = 0, the base model, wrong keys) should sit above -2 (p > 0.01: not detected);
radioactive models go far below; -6 and beyond is strong evidence. Summary metrics on this run:
`controls_min_log10p` (the most significant control: it should stay above -2) and `controls_fpr_0.01`
(the share of control cells below -2).
"""


def label(params: Mapping[str, Any], grid: Grid) -> str:
    """A trial's name: `base model seed=0` for Bob's base, else what varies, e.g. `rho=0.5 k=2 seed=0`."""
    if params.get("epochs") == BASE_MODEL_EPOCHS:
        return f"base model seed={params.get('seed', 0)}"
    text = grid.label(params).removeprefix("base ")
    return text if text.startswith("rho=") else f"rho={params['rho']:g} {text}"


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """A trial's headline metrics: log10 p of each test; wrong-key mean / min / max; tokens scored; utility.

    Named so that MLflow's chart view, which orders sections by name, shows the headline first: `log10p/<test>`,
    then `tokens/`, `utility/` and `wrong_key/`.
    """
    out: dict[str, float] = {}
    wrong: dict[str, list[float]] = {}
    for row in rows:
        if row.get("test") == "utility":
            for name in ("heldout_perplexity", "answer_perplexity"):
                if _finite(row.get(name)):
                    out[f"utility/{name}"] = float(row[name])
            continue
        name = str(row.get("name") or row.get("test"))
        value = row.get("log10_pvalue")
        if row.get("control") == WRONG_KEY:
            if _finite(value):
                wrong.setdefault(name, []).append(float(value))
            continue
        if _finite(value):
            out[f"log10p/{name}"] = float(value)
        if _finite(row.get("n_scored")):
            out[f"tokens/{name}"] = float(row["n_scored"])
    for name, values in wrong.items():
        out[f"wrong_key/{name}_mean"] = sum(values) / len(values)
        out[f"wrong_key/{name}_min"] = min(values)
        out[f"wrong_key/{name}_max"] = max(values)
    return out


def headline(outcome: TrialOutcome) -> str:
    """The console line of a finished trial: each test's log10 p, then perplexity."""
    tests = [f"{k.removeprefix('log10p/')} {v:.1f}" for k, v in outcome.metrics.items() if k.startswith("log10p/")]
    ppl = outcome.metrics.get("utility/heldout_perplexity")
    answers = outcome.metrics.get("utility/answer_perplexity")
    tail = (f"; ppl {ppl:.0f}" if _finite(ppl) else "") + (
        f", on A's answers {answers:.0f}" if _finite(answers) else ""
    )
    return "log10 p: " + ", ".join(tests) + tail


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _model(row: Mapping[str, Any]) -> str:
    return "base model" if row["epochs"] == BASE_MODEL_EPOCHS else f"rho={row['rho']:g}"


def _at_base(frame: pd.DataFrame, base: Mapping[str, Any], free: str) -> pd.DataFrame:
    """Rows whose axes equal the base point except `free` (the base-model control kept for the rho table)."""
    also = {"epochs": [BASE_MODEL_EPOCHS]} if free == "rho" else None
    return rows_at_base(frame, base, free, axes=AXES, also=also)


def _ablation_axes(grid: Grid) -> list[str]:
    """The axes with an ablation table: those varied around the base, and those an extra point moves (e.g. the
    scheme, compared at another k), but not rho (the p-value table) nor the base-model control's epochs."""
    axes = list(grid.varied_axes())
    for point in grid.include:
        for axis, value in point.items():
            moved = value != grid.base.get(axis) and not (axis == "epochs" and value == BASE_MODEL_EPOCHS)
            if moved and axis not in axes:
                axes.append(axis)
    return [axis for axis in axes if axis != "rho"]


def _axis_rows(tests: pd.DataFrame, base: Mapping[str, Any], axis: str, grid: Grid) -> tuple[pd.DataFrame, dict]:
    """The rows in which `axis` alone changes, and the axes moved off the base point to find them (none when the
    base point itself has two values of `axis`; else the other axes of the first extra point that changes it, e.g.
    KGW against Aaronson at k = 4 when Aaronson is only run there)."""
    anchors: list[dict[str, Any]] = [{}]
    for point in grid.include:
        if axis in point and point[axis] != base.get(axis):
            anchors.append({k: v for k, v in point.items() if k != axis and v != base.get(k)})
    for moved in anchors:
        rows = _at_base(tests, {**base, **moved}, axis)
        if rows[axis].nunique() > 1:
            return rows, moved
    return tests.iloc[0:0], {}


def _tests(frame: pd.DataFrame) -> pd.DataFrame:
    """The test rows, wrong-key rows folded to one cell per (trial, test) (their mean over keys)."""
    tests = frame[frame["test"] != "utility"].copy() if "test" in frame.columns else frame.iloc[0:0].copy()
    if not len(tests):
        return tests
    tests["model"] = tests.apply(_model, axis=1)
    keys = ["trial_id", "test"]
    numeric = ["log10_pvalue", *[c for c in ("n_scored",) if c in tests.columns]]
    folded = tests.groupby(keys, sort=False)[numeric].mean().reset_index()
    first = tests.drop(columns=numeric).drop_duplicates(keys)
    return first.merge(folded, on=keys)


def _tokens_plot(tests: pd.DataFrame, test: str, base: Mapping[str, Any]) -> Any:
    figure, axes = new_figure()
    for _, row in _at_base(tests[tests["test"] == test], base, "rho").iterrows():
        if isinstance(row.get("curve"), str):
            points = json.loads(row["curve"])
            line = axes.plot([p[0] for p in points], [p[1] for p in points], label=f"{row['model']} seed={row['seed']}")
            if isinstance(row.get("curve_band"), str):  # 10-90% over bootstrap resamples of the scored tokens
                band = json.loads(row["curve_band"])
                axes.fill_between(
                    [b[0] for b in band],
                    [b[1] for b in band],
                    [b[2] for b in band],
                    color=line[0].get_color(),
                    alpha=0.2,
                )
    axes.set_xscale("log")
    axes.axhline(NOT_DETECTED, color="grey", linestyle="--", linewidth=0.8)
    axes.set_xlabel("tokens scored")
    axes.set_ylabel("log10 p")
    axes.set_title(f"{test}: log10 p against tokens scored (band: 10-90% over resamples)")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    return figure


def build_report(frame: pd.DataFrame, grid: Grid, setup: Mapping[str, str] | None = None) -> Report:
    """The sweep's tables (numeric for MLflow, "mean ± std" on the console), plots, summary and description;
    `setup` describes the sweep's set-up for the `reproduction_setup` table (omitted without it)."""
    base = dict(grid.base)
    tests = _tests(frame)
    tables: dict[str, pd.DataFrame] = {}
    display: dict[str, pd.DataFrame] = {}
    figures: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    held: dict[str, str] = {}  # ablation tables drawn away from the base point: the other axes' values there
    if len(tests):
        rho_rows = _at_base(tests, base, "rho")
        if len(rho_rows):
            tables["pvalues"] = mean_std_columns(rho_rows, "model", "test", "log10_pvalue", digits=2)
            display["pvalues"] = mean_std_table(rho_rows, "model", "test", "log10_pvalue")
            if "n_scored" in rho_rows:
                tables["tokens_scored"] = (
                    rho_rows.pivot_table(index="model", columns="test", values="n_scored", aggfunc="mean")
                    .round(0)
                    .reset_index()
                )
            tuned = rho_rows[rho_rows["epochs"] != BASE_MODEL_EPOCHS]
            main = tuned[~tuned["test"].str.endswith(f"/{WRONG_KEY}")]
            figures["log10p_vs_rho"] = line_plot(
                main, "rho", "log10_pvalue", hue="test", title="log10 p against rho", hlines=(NOT_DETECTED, STRONG)
            )
        for axis in _ablation_axes(grid):
            rows, moved = _axis_rows(tests[tests["epochs"] != BASE_MODEL_EPOCHS], base, axis, grid)
            if len(rows):
                if moved:
                    held[f"ablation_{axis}"] = " ".join(f"{k}={v}" for k, v in moved.items())
                tables[f"ablation_{axis}"] = mean_std_columns(rows, axis, "test", "log10_pvalue", digits=2)
                display[f"ablation_{axis}"] = mean_std_table(rows, axis, "test", "log10_pvalue")
                main = rows[~rows["test"].str.endswith(f"/{WRONG_KEY}")]
                figures[f"log10p_vs_{axis}"] = line_plot(
                    main, axis, "log10_pvalue", hue="test", title=f"log10 p against {axis}", hlines=(NOT_DETECTED,)
                )
        if "curve" in tests.columns:
            names = sorted(t for t in tests["test"].unique() if not t.endswith(f"/{WRONG_KEY}"))
            for test in names:
                figures[f"log10p_vs_tokens_{test}"] = _tokens_plot(tests, test, base)
        test_rows = frame[frame["test"] != "utility"]
        is_control = (test_rows["rho"] == 0) | (test_rows.get("control") == WRONG_KEY)
        values = pd.to_numeric(test_rows.loc[is_control, "log10_pvalue"], errors="coerce").dropna()
        if len(values):
            metrics["controls_min_log10p"] = float(values.min())
            metrics["controls_fpr_0.01"] = float((values < NOT_DETECTED).mean())
            metrics["controls_n"] = float(len(values))
    utility_table = _utility(frame)
    if utility_table is not None:
        tables["utility"] = utility_table
    if len(tests):
        token_tests = tests[~tests["test"].str.endswith(f"/{WRONG_KEY}")]
        if "setting" in token_tests.columns:
            token_tests = token_tests[token_tests["setting"] != "mia"]  # MIA scores samples, not tokens
        tables["power"] = _power(token_tests, base)
        tables["findings"] = findings(tests, base, grid)
        main = tests[~tests["test"].str.endswith(f"/{WRONG_KEY}")]
        tuned = _at_base(main[main["epochs"] != BASE_MODEL_EPOCHS], base, "rho")
        kinds = _kind(main[main["setting"] != "mia"]) if "setting" in main.columns else _kind(main)
        tables["reproduction"] = reproduction_table(kinds, tuned)
        display["reproduction"] = tables["reproduction"].drop(columns=["paper_tokens", "ours_tokens"])
        if setup is not None:
            scored = tuned.groupby("test")["n_scored"].mean().dropna() if "n_scored" in tuned else None
            tables["reproduction_setup"] = setup_table(setup, scored)
    captions = {name: CAPTION for name in tables if name == "pvalues" or name.startswith("ablation_")}
    captions.update({name: f"{CAPTION} Other axes at the base point except {at}." for name, at in held.items()})
    captions.update(
        {
            "tokens_scored": "Deduplicated tokens scored per test.",
            "utility": "Held-out perplexity on corpus text (`ppl`) and on A's held-out answers (`answer_ppl`), mean "
            "over seeds; `ppl_vs_base`: ratio to Bob's base model (the faithful-fine-tune target is at most 1.25).",
            "power": "Tokens scored, log10 p, and tokens needed for p < 1e-5: read off the log10 p vs tokens curve, "
            "or (`extrapolated`) linearly from the final point; empty when the test shows no signal.",
            "findings": "The paper's claims, our numbers (log10 p) and a verdict.",
            "reproduction": "The paper's numbers (Sander et al., NeurIPS 2024) beside ours, test by test: log10 p at "
            "the same rho and the deduplicated tokens scored.",
            "reproduction_setup": "What differs between the paper's set-up and this sweep's.",
        }
    )
    # power and reproduction_setup: in MLflow only
    console = [name for name in ("pvalues", "utility", "findings", "reproduction") if name in tables]
    console += [t for t in tables if t.startswith("abl")]
    return Report(
        tables=tables,
        figures=figures,
        console=console,
        display=display,
        captions={k: v for k, v in captions.items() if k in tables},
        metrics=metrics,
        description=DESCRIPTION,
    )


def _utility(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Held-out perplexity (corpus, A's answers) per model and varied axis, and the ratio to the base model."""
    columns = [c for c in ("heldout_perplexity", "answer_perplexity") if c in frame.columns]
    if not columns or "test" not in frame.columns:
        return None
    utility = frame[frame["test"] == "utility"].copy()
    if not len(utility):
        return None
    utility["model"] = utility.apply(_model, axis=1)
    keys = ["model", *[a for a in AXES if a != "rho" and a in utility.columns and utility[a].nunique() > 1]]
    table = utility.groupby(keys, sort=False)[columns].mean().reset_index()
    table = table.rename(columns={"heldout_perplexity": "ppl", "answer_perplexity": "answer_ppl"})
    table["count"] = utility.groupby(keys, sort=False).size().to_numpy()
    base_rows = table[table["model"] == "base model"]
    if "ppl" in table.columns and len(base_rows):
        table["ppl_vs_base"] = table["ppl"] / float(base_rows["ppl"].iloc[0])
    return table.round(3)


def tokens_to_reach(
    curve: list[list[float]] | None, n_scored: float, log10p: float, target: float = TARGET
) -> tuple[float | None, bool]:
    """Tokens scored at which log10 p first reaches `target` on the curve (interpolated between its points), and
    whether it is extrapolated: beyond the curve, linearly from the final point (log p of a fixed per-token bias
    grows linearly in the tokens scored). None when the test shows no signal (final log10 p above -1)."""
    points = [(float(n), float(v)) for n, v in (curve or []) if _finite(n) and _finite(v)]
    previous = (0.0, 0.0)
    for n, v in points:
        if v <= target:
            n0, v0 = previous
            fraction = (target - v0) / (v - v0) if v != v0 else 1.0
            return n0 + fraction * (n - n0), False
        previous = (n, v)
    if not _finite(log10p) or not _finite(n_scored) or log10p > -1.0 or n_scored <= 0:
        return None, True
    return float(n_scored) * target / float(log10p), True


def _power(tests: pd.DataFrame, base: Mapping[str, Any]) -> pd.DataFrame:
    """Per model (at the base recipe) and test: tokens scored, log10 p, tokens needed for p < 1e-5."""
    rows = []
    for _, row in _at_base(tests, base, "rho").iterrows():
        curve = json.loads(row["curve"]) if isinstance(row.get("curve"), str) else None
        n_scored = row.get("n_scored", float("nan"))
        needed, extrapolated = tokens_to_reach(curve, n_scored, row["log10_pvalue"])
        rows.append(
            {
                "model": row["model"],
                "test": row["test"],
                "seed": row.get("seed", 0),
                "tokens_scored": n_scored,
                "log10_pvalue": row["log10_pvalue"],
                "tokens_to_1e-5": needed,
                "extrapolated": bool(extrapolated) if needed is not None else None,
            }
        )
    if not rows:
        return pd.DataFrame(columns=["model", "test", "tokens_scored", "log10_pvalue", "tokens_to_1e-5"])
    table = pd.DataFrame(rows)
    return (
        table.groupby(["model", "test"], sort=False)
        .agg(
            tokens_scored=("tokens_scored", "mean"),
            log10_pvalue=("log10_pvalue", "mean"),
            tokens_to_1e5=("tokens_to_1e-5", "mean"),
            extrapolated=("extrapolated", "max"),
        )
        .reset_index()
        .rename(columns={"tokens_to_1e5": "tokens_to_1e-5"})
        .round(2)
    )


# -- findings: the paper's claims, our numbers, verdicts -------------------------------------------------------
def _kind(tests: pd.DataFrame) -> pd.DataFrame:
    """One row per test name (no wrong keys, no MIA): its setting, supervision and whether it filters with phi."""
    main = tests[~tests["test"].str.endswith(f"/{WRONG_KEY}")]
    kinds = main.drop_duplicates("test")[["test"]].copy()
    first = main.drop_duplicates("test").set_index("test")
    kinds["setting"] = [first.loc[t].get("setting") for t in kinds["test"]]
    kinds["supervised"] = [bool(first.loc[t].get("supervised")) for t in kinds["test"]]
    phi = main.groupby("test")["phi_size"].max() if "phi_size" in main.columns else pd.Series(dtype=float)
    kinds["phi"] = [bool(_finite(phi.get(t)) and phi.get(t) > 0) for t in kinds["test"]]
    return kinds.reset_index(drop=True)


def _per_rho(tests: pd.DataFrame, base: Mapping[str, Any], test: str) -> pd.Series:
    """Mean log10 p of `test` per rho > 0 at the base recipe (fine-tuned models only)."""
    rows = _at_base(tests, base, "rho")
    rows = rows[(rows["test"] == test) & (rows["epochs"] != BASE_MODEL_EPOCHS) & (rows["rho"] > 0)]
    return rows.groupby("rho")["log10_pvalue"].mean().sort_index()


def _shortfall(tests: pd.DataFrame, base: Mapping[str, Any], test: str, rho: float, log10p: float) -> str:
    """Why a test misses p < 1e-5 at `rho`, in tokens: how many it scored and how many it would need."""
    if log10p <= TARGET:
        return ""
    rows = _at_base(tests, base, "rho")
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


def findings(tests: pd.DataFrame, base: Mapping[str, Any], grid: Grid) -> pd.DataFrame:
    """The paper's claims (one row each) with our number and a verdict, from the folded test rows."""
    kinds = _kind(tests[tests["setting"] != "mia"]) if "setting" in tests.columns else _kind(tests)
    out: list[dict[str, str]] = []

    def add(claim: str, paper: str, ours: str, verdict: str) -> None:
        out.append({"claim": claim, "paper": paper, "ours": ours, "verdict": verdict})

    headline_test = _pick(kinds, setting="open", supervised=False, phi=False) or (
        str(kinds["test"].iloc[0]) if len(kinds) else None
    )
    # 1. detection grows with rho
    values = _per_rho(tests, base, headline_test) if headline_test else pd.Series(dtype=float)
    if len(values) >= 2:
        steps = values.diff().dropna()
        monotone = bool((steps <= 1.0).all())  # allow one decade of noise between neighbouring rho
        detected_top = bool(values.iloc[-1] < NOT_DETECTED)
        verdict = "holds" if monotone and detected_top else ("partly" if detected_top else "does not hold")
        add("detection grows with rho", "p falls as rho grows (Table 2)", f"{headline_test}: {_fmt(values)}", verdict)
        at = values[values.index.isin([0.05, 0.1])]
        if len(at):
            hit = "; ".join(
                f"rho={r:g} {'reaches' if v <= TARGET else 'misses'} p<1e-5 "
                f"({v:.1f}{_shortfall(tests, base, headline_test, r, v)})"
                for r, v in at.items()
            )
            add(
                "open unsupervised detects small rho",
                "p < 1e-5 at rho = 5% (open, unsupervised)",
                f"{headline_test}: {hit}",
                "holds" if (at <= TARGET).all() else ("partly" if (at <= TARGET).any() else "does not hold"),
            )
    else:
        add("detection grows with rho", "p falls as rho grows (Table 2)", NOT_IN_SWEEP, NOT_IN_SWEEP)
    # 2. open beats closed (same supervision, both without phi when possible)
    pair = None
    for supervised in (True, False):
        for phi in (False, True):
            open_t = _pick(kinds, setting="open", supervised=supervised, phi=phi)
            closed_t = _pick(kinds, setting="closed", supervised=supervised, phi=phi) or _pick(
                kinds, setting="closed", supervised=supervised
            )
            if open_t and closed_t and pair is None:
                pair = (open_t, closed_t)
    ours, verdict = _compare(tests, base, *pair) if pair else (NOT_IN_SWEEP, NOT_IN_SWEEP)
    add("open beats closed", "reading mode is more powerful than B's answers (Fig. 5)", ours, verdict)
    # 3. supervised beats unsupervised
    pair = None
    for setting in ("open", "closed"):
        sup = _pick(kinds, setting=setting, supervised=True, phi=False)
        unsup = _pick(kinds, setting=setting, supervised=False, phi=False)
        if sup and unsup and pair is None:
            pair = (sup, unsup)
    ours, verdict = _compare(tests, base, *pair) if pair else (NOT_IN_SWEEP, NOT_IN_SWEEP)
    add("supervised beats unsupervised", "knowing B's training data gives more power (Table 2)", ours, verdict)
    # 4. phi adds power
    pair = None
    for _, row in kinds[kinds["phi"]].iterrows():
        plain = _pick(kinds, setting=row["setting"], supervised=row["supervised"], phi=False)
        if plain and pair is None:
            pair = (str(row["test"]), plain)
    ours, verdict = _compare(tests, base, *pair) if pair else (NOT_IN_SWEEP, NOT_IN_SWEEP)
    add("phi adds power", "filtering on phi raises power (Sec. 5)", ours, verdict)
    # 5. smaller k is more radioactive
    if "k" in grid.varied_axes() and headline_test:
        rows = _at_base(tests[tests["epochs"] != BASE_MODEL_EPOCHS], base, "k")
        per_k = rows[rows["test"] == headline_test].groupby("k")["log10_pvalue"].mean().sort_index()
        if len(per_k) >= 2:
            ours = f"{headline_test} at rho={base['rho']:g}: " + ", ".join(f"k={k}: {v:.1f}" for k, v in per_k.items())
            verdict = (
                "holds"
                if per_k.iloc[0] < per_k.iloc[-1] and per_k.is_monotonic_increasing
                else ("partly" if per_k.iloc[0] < per_k.iloc[-1] else "does not hold")
            )
            add("smaller k is more radioactive", "radioactivity falls as k grows (Fig. 6)", ours, verdict)
    if not any(r["claim"] == "smaller k is more radioactive" for r in out):
        add("smaller k is more radioactive", "radioactivity falls as k grows (Fig. 6)", NOT_IN_SWEEP, NOT_IN_SWEEP)
    # 6. MIA needs supervision
    mia = tests[tests.get("setting") == "mia"] if "setting" in tests.columns else tests.iloc[0:0]
    if len(mia) and "d" in mia.columns:
        tuned = _at_base(mia, base, "rho")
        tuned = tuned[(tuned["epochs"] != BASE_MODEL_EPOCHS) & (tuned["rho"] > 0)]
        d1 = tuned[tuned["d"] >= 0.5].groupby("rho")["log10_pvalue"].mean().sort_index()
        d0 = tuned[tuned["d"] <= 0.01].groupby("rho")["log10_pvalue"].mean().sort_index()
        if len(d1) and len(d0):
            ours = f"d=1 {_fmt(d1)}; d=0 {_fmt(d0)}"
            verdict = (
                "holds"
                if d1.min() < NOT_DETECTED and (d0 > NOT_DETECTED).all()
                else ("does not hold" if (d0 <= NOT_DETECTED).any() else "undecided (d=1 not detected)")
            )
            add("MIA needs supervision", "MIA detects at d=1, gives nothing at d=0 (Sec. 6)", ours, verdict)
    if not any(r["claim"] == "MIA needs supervision" for r in out):
        add("MIA needs supervision", "MIA detects at d=1, gives nothing at d=0 (Sec. 6)", NOT_IN_SWEEP, NOT_IN_SWEEP)
    # 7. controls uniform
    controls = tests[(tests["rho"] == 0) | tests["test"].str.endswith(f"/{WRONG_KEY}")]
    values = pd.to_numeric(controls["log10_pvalue"], errors="coerce").dropna()
    if len(values):
        below = int((values < NOT_DETECTED).sum())
        ours = f"{below}/{len(values)} control cells below -2 (FPR {below / len(values):.2f}); min {values.min():.1f}"
        # under H0 each cell is below -2 with probability <= 0.01: more than 1 + 5% of the cells is a failure
        verdict = "holds" if below <= 1 + 0.05 * len(values) and values.min() > -4 else "does not hold"
        add("controls uniform", "rho=0, base model and wrong keys: p uniform (FPR 0.01 at 0.01)", ours, verdict)
    else:
        add("controls uniform", "rho=0, base model and wrong keys: p uniform", NOT_IN_SWEEP, NOT_IN_SWEEP)
    return pd.DataFrame(out, columns=["claim", "paper", "ours", "verdict"])
