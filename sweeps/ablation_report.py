"""Tables, plots, trial names and summaries of the ablation sweep, from the engine's results frame (a row per test).

Every number in the p-value tables is log10 p: -6 reads as p = 1e-6; a control above -2 (p > 0.01) is "not
detected". Recorded tables are numeric (`<test> mean`, `<test> std` columns, so that they sort and plot); the
console prints the same values as "mean ± std".

- `pvalues`: per model (each rho at the base recipe, and the base model) and test; `<test>/wrong-key` columns are
  the same test under wrong keys (the mean over keys; min and max are in each trial's metrics);
- `ablation_<axis>`: the same for every axis varied one at a time (from the preset or the command line);
- `tokens_scored`: the deduplicated tokens each test scored; `utility`: held-out perplexity per model;
- plots: log10 p against rho and against every varied axis, log10 p against tokens scored for every test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from sweeps.ablation_config import AXES
from sweeps.ablation_steps import BASE_MODEL_EPOCHS
from sweeps.engine.grid import Grid
from sweeps.engine.outcomes import Report, TrialOutcome
from sweeps.engine.tables import line_plot, mean_std_columns, mean_std_table, new_figure

WRONG_KEY = "wrong-key"
NOT_DETECTED = -2.0  # log10 p above this (p > 0.01): the control cells' threshold
STRONG = -6.0  # the paper's scale of evidence (p < 1e-6)
CAPTION = "Values are log10 p (mean and std over seeds): -6 reads as p = 1e-6; controls should stay above -2."
DESCRIPTION = """Radioactivity sweep: was model B trained on text written by our watermarked model A?

Tables (artifacts `tables/`, also as MLflow tables; every p-value cell is **log10 p**):
- `pvalues`: one row per model (each rho at the base recipe, and Bob's base model); `<test> mean` / `<test> std`
  over seeds. `<test>/wrong-key` columns: the same test under wrong keys (mean over keys).
- `ablation_<axis>`: the same for each axis varied one at a time around the base point.
- `tokens_scored`: deduplicated tokens scored per test (power grows with it). `utility`: held-out perplexity.

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
            if _finite(row.get("heldout_perplexity")):
                out["utility/heldout_perplexity"] = float(row["heldout_perplexity"])
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
    return "log10 p: " + ", ".join(tests) + (f"; ppl {ppl:.0f}" if _finite(ppl) else "")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _model(row: Mapping[str, Any]) -> str:
    return "base model" if row["epochs"] == BASE_MODEL_EPOCHS else f"rho={row['rho']:g}"


def _at_base(frame: pd.DataFrame, base: Mapping[str, Any], free: str) -> pd.DataFrame:
    """Rows whose axes equal the base point except `free` (the base-model control kept for the rho table)."""
    mask = pd.Series(True, index=frame.index)
    for axis in AXES:
        if axis == free or axis not in frame.columns:
            continue
        same = frame[axis] == base[axis]
        if free == "rho" and axis == "epochs":
            same |= frame[axis] == BASE_MODEL_EPOCHS
        mask &= same
    return frame[mask]


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
            axes.plot([p[0] for p in points], [p[1] for p in points], label=f"{row['model']} seed={row['seed']}")
    axes.set_xscale("log")
    axes.axhline(NOT_DETECTED, color="grey", linestyle="--", linewidth=0.8)
    axes.set_xlabel("tokens scored")
    axes.set_ylabel("log10 p")
    axes.set_title(f"{test}: log10 p against tokens scored")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    return figure


def build_report(frame: pd.DataFrame, grid: Grid) -> Report:
    """The sweep's tables (numeric for MLflow, "mean ± std" on the console), plots, summary and description."""
    base = dict(grid.base)
    tests = _tests(frame)
    tables: dict[str, pd.DataFrame] = {}
    display: dict[str, pd.DataFrame] = {}
    figures: dict[str, Any] = {}
    metrics: dict[str, float] = {}
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
        for axis in grid.varied_axes():
            if axis == "rho":
                continue
            rows = _at_base(tests[tests["epochs"] != BASE_MODEL_EPOCHS], base, axis)
            if rows[axis].nunique() > 1:
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
    if "heldout_perplexity" in frame.columns:
        utility = frame[frame["test"] == "utility"].copy()
        if len(utility):
            utility["model"] = utility.apply(_model, axis=1)
            keys = ["model", *[a for a in AXES if a != "rho" and utility[a].nunique() > 1]]
            tables["utility"] = (
                utility.groupby(keys)["heldout_perplexity"].agg(["mean", "std", "count"]).reset_index().round(3)
            )
    captions = {name: CAPTION for name in tables if name == "pvalues" or name.startswith("ablation_")}
    captions.update({"tokens_scored": "Deduplicated tokens scored per test.", "utility": "Held-out perplexity."})
    console = [name for name in ("pvalues", "utility") if name in tables] + [t for t in tables if t.startswith("abl")]
    return Report(
        tables=tables,
        figures=figures,
        console=console,
        display=display,
        captions={k: v for k, v in captions.items() if k in tables},
        metrics=metrics,
        description=DESCRIPTION,
    )
