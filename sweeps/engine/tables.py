"""Table and plot helpers for sweep reports: aggregates over seeds, numeric pivots, Markdown, matplotlib (Agg)."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure


def aggregate(frame: pd.DataFrame, by: Sequence[str], metric: str, over: str | None = "seed") -> pd.DataFrame:
    """Mean, standard deviation (ddof=1; NaN for one replicate), min, max and count of `metric` per group.

    `over` names the replication column (checked to exist when given): rows differing only in it are pooled.
    """
    if over is not None and over not in frame.columns:
        raise KeyError(f"aggregate: replication column {over!r} not in the frame ({list(frame.columns)})")
    missing = [c for c in [*by, metric] if c not in frame.columns]
    if missing:
        raise KeyError(f"aggregate: columns {missing} not in the frame ({list(frame.columns)})")
    grouped = frame.groupby(list(by), dropna=False, sort=True)[metric]
    table = grouped.agg(["mean", "std", "min", "max", "count"]).reset_index()
    return table.rename(
        columns={
            "mean": f"{metric}_mean",
            "std": f"{metric}_std",
            "min": f"{metric}_min",
            "max": f"{metric}_max",
            "count": "n",
        }
    )


def held_axes(
    frame: pd.DataFrame, base: Mapping[str, Any], free: str, axes: Iterable[str] | None = None
) -> dict[str, Any]:
    """The axes `rows_at_base` holds, with their base values: those of `axes` (default: of `base`) other than
    `free` that the frame has and that take more than one value in it."""
    return {
        axis: base[axis]
        for axis in (base if axes is None else axes)
        if axis != free and axis in frame.columns and frame[axis].nunique(dropna=False) > 1
    }


def rows_at_base(
    frame: pd.DataFrame,
    base: Mapping[str, Any],
    free: str,
    axes: Iterable[str] | None = None,
    also: Mapping[str, Sequence[Any]] | None = None,
) -> pd.DataFrame:
    """The rows of `frame` at the grid's base point on every axis but `free`: a slice in which `free` alone changes.

    `axes` are the axes to hold (default: those of `base`). An axis is held only where the frame has it and takes
    more than one value in it (`held_axes`): a single value is the sweep's own set-up, not a mix of points to split
    (a sweep run with `k=2` alone keeps its rows whatever the preset's base k). `also` names further values an axis
    may keep, e.g. the epochs of a control point drawn beside the line.
    """
    extra = also or {}
    mask = np.ones(len(frame), dtype=bool)
    for axis, value in held_axes(frame, base, free, axes).items():
        mask &= frame[axis].isin([value, *extra.get(axis, ())]).to_numpy()
    return frame[mask]


def mean_std_table(
    frame: pd.DataFrame,
    index: str | Sequence[str],
    columns: str | Sequence[str],
    metric: str,
    digits: int = 1,
) -> pd.DataFrame:
    """Pivot of "mean ± std" strings of `metric` over replicates: a row per `index`, a column per `columns`.

    A cell with a single replicate shows the mean alone.
    """
    index = [index] if isinstance(index, str) else list(index)
    columns = [columns] if isinstance(columns, str) else list(columns)
    stats = aggregate(frame, [*index, *columns], metric, over=None)

    def cell(row: Any) -> str:
        mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
        if row["n"] < 2 or (isinstance(std, float) and math.isnan(std)):
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} ± {std:.{digits}f}"

    stats["cell"] = stats.apply(cell, axis=1)
    table = stats.pivot_table(index=index, columns=columns, values="cell", aggfunc="first")
    table.columns = [
        " ".join(str(part) for part in (c if isinstance(c, tuple) else (c,))) for c in table.columns.to_list()
    ]
    return table.reset_index()


def mean_std_columns(
    frame: pd.DataFrame, index: str | Sequence[str], columns: str, metric: str, digits: int = 3
) -> pd.DataFrame:
    """Numeric pivot of `metric` over replicates: a row per `index`, and per value of `columns` two columns,
    `<value> mean` and `<value> std` (NaN for a single replicate), so that the table sorts and plots."""
    index = [index] if isinstance(index, str) else list(index)
    stats = aggregate(frame, [*index, columns], metric, over=None)
    wide = stats.pivot_table(
        index=index, columns=columns, values=[f"{metric}_mean", f"{metric}_std"], aggfunc="first", dropna=False
    )
    ordered = []
    for value in sorted(stats[columns].unique(), key=str):
        for kind in ("mean", "std"):
            ordered.append((f"{metric}_{kind}", value))
    wide = wide.reindex(columns=ordered)
    wide.columns = [f"{value} {name.rsplit('_', 1)[1]}" for name, value in ordered]
    return wide.reset_index().round(digits)


def to_markdown(frame: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    """GitHub-style Markdown table (no `tabulate` dependency)."""

    def text(value: Any) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else floatfmt.format(value)
        return str(value).replace("|", "\\|").replace("\n", " ")

    headers = [str(c) for c in frame.columns]
    rows = [[text(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    out = io.StringIO()
    out.write("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |\n")
    out.write("|" + "|".join("-" * (w + 2) for w in widths) + "|\n")
    for row in rows:
        out.write("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |\n")
    return out.getvalue()


def print_table(frame: pd.DataFrame, title: str | None = None, file: Any = None) -> None:
    """Print a table to the console (Markdown layout, readable as is and pastable into a README)."""
    import sys

    stream = file or sys.stdout
    if title:
        stream.write(f"\n{title}\n")
    stream.write(to_markdown(frame))
    stream.flush()


def new_figure(width: float = 6.0, height: float = 4.0) -> tuple[Figure, Any]:
    """A (figure, axes) pair on the non-interactive Agg backend, safe on headless machines."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    return figure, figure.add_subplot(1, 1, 1)


def line_plot(
    frame: pd.DataFrame,
    x: str,
    y: str,
    hue: str | Sequence[str] | None = None,
    title: str | None = None,
    xlog: bool = False,
    hlines: Iterable[float] = (),
) -> Figure:
    """Mean of `y` against `x`, one line per `hue` group, with ±1 std error bars over replicates."""
    figure, axes = new_figure()
    hue_cols = [] if hue is None else ([hue] if isinstance(hue, str) else list(hue))
    groups = frame.groupby(hue_cols, dropna=False, sort=True) if hue_cols else [((), frame)]
    for key, part in groups:
        stats = part.groupby(x, sort=True)[y].agg(["mean", "std"]).reset_index()
        values = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{c}={v}" for c, v in zip(hue_cols, values, strict=True))
        errors = stats["std"].fillna(0.0)
        axes.errorbar(stats[x], stats["mean"], yerr=errors, marker="o", capsize=3, label=label)
    for level in hlines:
        axes.axhline(level, color="grey", linestyle="--", linewidth=0.8)
    if xlog:
        axes.set_xscale("symlog")
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    if title:
        axes.set_title(title)
    if hue_cols:
        axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    return figure
