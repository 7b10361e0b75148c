"""Tables and plots of the ablation sweep, from the engine's results frame (one row per test of a trial).

- `pvalues`: log10 p (mean ± std over seeds) per model (rho, or the base model) and test, at the base recipe;
- `ablation_<axis>`: the same for each axis varied one at a time (lr, epochs, size, k, scheme, method);
- `utility`: held-out perplexity per model; figures: log10 p against rho per test, log10 p against tokens scored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from sweeps.ablation_config import AXES
from sweeps.ablation_steps import BASE_MODEL_EPOCHS


def _label(row: Mapping[str, Any]) -> str:
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


def build_report(frame: pd.DataFrame, base: Mapping[str, Any], varied: list[str]) -> Any:
    """The `Report` of the sweep: p-value table, one ablation table per varied axis, utility, plots."""
    from radio.tracking import line_plot, mean_std_table, new_figure
    from sweeps.engine import Report

    tests = frame[frame["test"] != "utility"].copy() if "test" in frame.columns else frame.iloc[0:0]
    tests["model"] = tests.apply(_label, axis=1)
    tables: dict[str, pd.DataFrame] = {}
    figures: dict[str, Any] = {}
    rho_rows = _at_base(tests, base, "rho")
    if len(rho_rows):
        tables["pvalues"] = mean_std_table(rho_rows, "model", "test", "log10_pvalue")
        counts = rho_rows.groupby(["model", "test"])["n_scored"].mean().unstack() if "n_scored" in rho_rows else None
        if counts is not None:
            tables["tokens_scored"] = counts.round(0).reset_index()
        tuned = rho_rows[rho_rows["epochs"] != BASE_MODEL_EPOCHS]
        figures["log10p_vs_rho"] = line_plot(
            tuned, "rho", "log10_pvalue", hue="test", title="log10 p against rho", hlines=(-2.0, -6.0)
        )
    for axis in varied:
        if axis == "rho":
            continue
        rows = _at_base(tests[tests["epochs"] != BASE_MODEL_EPOCHS], base, axis)
        if rows[axis].nunique() > 1:
            tables[f"ablation_{axis}"] = mean_std_table(rows, axis, "test", "log10_pvalue")
    if "heldout_perplexity" in frame.columns:
        utility = frame[frame["test"] == "utility"].copy()
        if len(utility):
            utility["model"] = utility.apply(_label, axis=1)
            keys = ["model", *[a for a in AXES if a not in ("rho",) and utility[a].nunique() > 1]]
            tables["utility"] = (
                utility.groupby(keys)["heldout_perplexity"].agg(["mean", "std", "count"]).reset_index().round(3)
            )
    if "curve" in tests.columns:
        figure, axes = new_figure()
        main_test = tests["test"].iloc[0] if len(tests) else None
        for _, row in _at_base(tests[tests["test"] == main_test], base, "rho").iterrows():
            if isinstance(row["curve"], str):
                points = json.loads(row["curve"])
                axes.plot([p[0] for p in points], [p[1] for p in points], label=f"{row['model']} seed={row['seed']}")
        axes.set_xscale("log")
        axes.set_xlabel("tokens scored")
        axes.set_ylabel("log10 p")
        axes.set_title(f"{main_test}: log10 p against tokens scored")
        axes.legend(fontsize="small")
        figures["log10p_vs_tokens"] = figure
    console = [name for name in ("pvalues", "utility") if name in tables] + [t for t in tables if t.startswith("abl")]
    return Report(tables=tables, figures=figures, console=console)
