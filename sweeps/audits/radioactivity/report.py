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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sweeps.audits.radioactivity.config import AXES
from sweeps.audits.radioactivity.findings import findings
from sweeps.audits.radioactivity.frames import (
    NOT_DETECTED,
    STRONG,
    WRONG_KEY,
    at_base,
    finite,
    scoring,
    test_kinds,
    tokens_to_reach,
)
from sweeps.audits.radioactivity.reproduction import reproduction_table, setup_table
from sweeps.audits.radioactivity.steps import BASE_MODEL_EPOCHS
from sweeps.engine.grid import Grid
from sweeps.engine.outcomes import Report, TrialOutcome
from sweeps.engine.tables import line_plot, mean_std_columns, mean_std_table, new_figure

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
                if finite(row.get(name)):
                    out[f"utility/{name}"] = float(row[name])
            continue
        name = str(row.get("name") or row.get("test"))
        value = row.get("log10_pvalue")
        if row.get("control") == WRONG_KEY:
            if finite(value):
                wrong.setdefault(name, []).append(float(value))
            continue
        if finite(value):
            out[f"log10p/{name}"] = float(value)
        if finite(row.get("n_scored")):
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
    tail = (f"; ppl {ppl:.0f}" if finite(ppl) else "") + (f", on A's answers {answers:.0f}" if finite(answers) else "")
    return "log10 p: " + ", ".join(tests) + tail


def _model(row: Mapping[str, Any]) -> str:
    return "base model" if row["epochs"] == BASE_MODEL_EPOCHS else f"rho={row['rho']:g}"


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
        rows = at_base(tests, {**base, **moved}, axis)
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
    for _, row in at_base(tests[tests["test"] == test], base, "rho").iterrows():
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


CAPTIONS = {
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


@dataclass
class _Sections:
    """The report's parts as they are built (tables in console order of insertion)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    display: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)  # ablation tables away from the base point: the other axes


def _rho_section(out: _Sections, tests: pd.DataFrame, base: Mapping[str, Any]) -> None:
    """The p-value table against rho at the base recipe, the tokens scored, and the log10 p vs rho plot."""
    rho_rows = at_base(tests, base, "rho")
    if not len(rho_rows):
        return
    out.tables["pvalues"] = mean_std_columns(rho_rows, "model", "test", "log10_pvalue", digits=2)
    out.display["pvalues"] = mean_std_table(rho_rows, "model", "test", "log10_pvalue")
    if "n_scored" in rho_rows:
        out.tables["tokens_scored"] = (
            rho_rows.pivot_table(index="model", columns="test", values="n_scored", aggfunc="mean")
            .round(0)
            .reset_index()
        )
    tuned = rho_rows[rho_rows["epochs"] != BASE_MODEL_EPOCHS]
    main = tuned[~tuned["test"].str.endswith(f"/{WRONG_KEY}")]
    out.figures["log10p_vs_rho"] = line_plot(
        main, "rho", "log10_pvalue", hue="test", title="log10 p against rho", hlines=(NOT_DETECTED, STRONG)
    )


def _ablation_sections(out: _Sections, tests: pd.DataFrame, base: Mapping[str, Any], grid: Grid) -> None:
    """One table and plot per ablation axis, and the log10 p vs tokens plot of every test."""
    for axis in _ablation_axes(grid):
        rows, moved = _axis_rows(tests[tests["epochs"] != BASE_MODEL_EPOCHS], base, axis, grid)
        if not len(rows):
            continue
        if moved:
            out.held[f"ablation_{axis}"] = " ".join(f"{k}={v}" for k, v in moved.items())
        out.tables[f"ablation_{axis}"] = mean_std_columns(rows, axis, "test", "log10_pvalue", digits=2)
        out.display[f"ablation_{axis}"] = mean_std_table(rows, axis, "test", "log10_pvalue")
        main = rows[~rows["test"].str.endswith(f"/{WRONG_KEY}")]
        out.figures[f"log10p_vs_{axis}"] = line_plot(
            main, axis, "log10_pvalue", hue="test", title=f"log10 p against {axis}", hlines=(NOT_DETECTED,)
        )
    if "curve" in tests.columns:
        names = sorted(t for t in tests["test"].unique() if not t.endswith(f"/{WRONG_KEY}"))
        for test in names:
            out.figures[f"log10p_vs_tokens_{test}"] = _tokens_plot(tests, test, base)


def _control_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """Summary metrics of the control cells (rho = 0 and wrong keys): their minimum and FPR at 0.01."""
    test_rows = frame[frame["test"] != "utility"]
    is_control = (test_rows["rho"] == 0) | (test_rows.get("control") == WRONG_KEY)
    values = pd.to_numeric(test_rows.loc[is_control, "log10_pvalue"], errors="coerce").dropna()
    if not len(values):
        return {}
    return {
        "controls_min_log10p": float(values.min()),
        "controls_fpr_0.01": float((values < NOT_DETECTED).mean()),
        "controls_n": float(len(values)),
    }


def _paper_sections(
    out: _Sections, tests: pd.DataFrame, base: Mapping[str, Any], grid: Grid, setup: Mapping[str, str] | None
) -> None:
    """Power in tokens, the findings, and the paper's numbers beside ours (with the set-up differences)."""
    main = tests[~tests["test"].str.endswith(f"/{WRONG_KEY}")]
    out.tables["power"] = _power(scoring(main, "tokens"), base)
    out.tables["findings"] = findings(tests, base, grid)
    tuned = at_base(main[main["epochs"] != BASE_MODEL_EPOCHS], base, "rho")
    out.tables["reproduction"] = reproduction_table(test_kinds(scoring(main, "tokens")), tuned)
    out.display["reproduction"] = out.tables["reproduction"].drop(columns=["paper_tokens", "ours_tokens"])
    if setup is not None:
        scored = tuned.groupby("test")["n_scored"].mean().dropna() if "n_scored" in tuned else None
        out.tables["reproduction_setup"] = setup_table(setup, scored)


def build_report(frame: pd.DataFrame, grid: Grid, setup: Mapping[str, str] | None = None) -> Report:
    """The sweep's tables (numeric for MLflow, "mean ± std" on the console), plots, summary and description;
    `setup` describes the sweep's set-up for the `reproduction_setup` table (omitted without it)."""
    base = dict(grid.base)
    tests = _tests(frame)
    out = _Sections()
    metrics: dict[str, float] = {}
    if len(tests):
        _rho_section(out, tests, base)
        _ablation_sections(out, tests, base, grid)
        metrics = _control_metrics(frame)
    utility_table = _utility(frame)
    if utility_table is not None:
        out.tables["utility"] = utility_table
    if len(tests):
        _paper_sections(out, tests, base, grid, setup)
    captions = {name: CAPTION for name in out.tables if name == "pvalues" or name.startswith("ablation_")}
    captions.update({name: f"{CAPTION} Other axes at the base point except {at}." for name, at in out.held.items()})
    captions.update(CAPTIONS)
    # power and reproduction_setup: in MLflow only
    console = [name for name in ("pvalues", "utility", "findings", "reproduction") if name in out.tables]
    console += [t for t in out.tables if t.startswith("abl")]
    return Report(
        tables=out.tables,
        figures=out.figures,
        console=console,
        display=out.display,
        captions={k: v for k, v in captions.items() if k in out.tables},
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


def _power(tests: pd.DataFrame, base: Mapping[str, Any]) -> pd.DataFrame:
    """Per model (at the base recipe) and test: tokens scored, log10 p, tokens needed for p < 1e-5."""
    rows = []
    for _, row in at_base(tests, base, "rho").iterrows():
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
