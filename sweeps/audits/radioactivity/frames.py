"""Shared pieces of the radioactivity tables: thresholds, the base-point filter, per-test kinds, power in tokens.

The report (`report.py`) and the findings (`findings.py`) both read the folded test rows through these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from sweeps.audits.radioactivity.config import AXES
from sweeps.audits.radioactivity.steps import BASE_MODEL_EPOCHS
from sweeps.engine.tables import rows_at_base

WRONG_KEY = "wrong-key"
NOT_DETECTED = -2.0  # log10 p above this (p > 0.01): the control cells' threshold
STRONG = -6.0  # the paper's scale of evidence (p < 1e-6)
TARGET = -5.0  # the paper's headline threshold (p < 1e-5)
NOT_IN_SWEEP = "not in this sweep"


def finite(value: Any) -> bool:
    """A real, finite number (not a bool, not NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def at_base(frame: pd.DataFrame, base: Mapping[str, Any], free: str) -> pd.DataFrame:
    """Rows whose axes equal the base point except `free` (the base-model control kept for the rho table)."""
    also = {"epochs": [BASE_MODEL_EPOCHS]} if free == "rho" else None
    return rows_at_base(frame, base, free, axes=AXES, also=also)


def tokens_to_reach(
    curve: list[list[float]] | None, n_scored: float, log10p: float, target: float = TARGET
) -> tuple[float | None, bool]:
    """Tokens scored at which log10 p first reaches `target` on the curve (interpolated between its points), and
    whether it is extrapolated: beyond the curve, linearly from the final point (log p of a fixed per-token bias
    grows linearly in the tokens scored). None when the test shows no signal (final log10 p above -1)."""
    points = [(float(n), float(v)) for n, v in (curve or []) if finite(n) and finite(v)]
    previous = (0.0, 0.0)
    for n, v in points:
        if v <= target:
            n0, v0 = previous
            fraction = (target - v0) / (v - v0) if v != v0 else 1.0
            return n0 + fraction * (n - n0), False
        previous = (n, v)
    if not finite(log10p) or not finite(n_scored) or log10p > -1.0 or n_scored <= 0:
        return None, True
    return float(n_scored) * target / float(log10p), True


def test_kinds(tests: pd.DataFrame) -> pd.DataFrame:
    """One row per test name (no wrong keys, no MIA): its setting, supervision and whether it filters with phi."""
    main = tests[~tests["test"].str.endswith(f"/{WRONG_KEY}")]
    kinds = main.drop_duplicates("test")[["test"]].copy()
    first = main.drop_duplicates("test").set_index("test")
    kinds["setting"] = [first.loc[t].get("setting") for t in kinds["test"]]
    kinds["supervised"] = [bool(first.loc[t].get("supervised")) for t in kinds["test"]]
    phi = main.groupby("test")["phi_size"].max() if "phi_size" in main.columns else pd.Series(dtype=float)
    kinds["phi"] = [bool(finite(phi.get(t)) and phi.get(t) > 0) for t in kinds["test"]]
    return kinds.reset_index(drop=True)


def scoring(tests: pd.DataFrame, unit: str) -> pd.DataFrame:
    """The rows of tests whose setting scores `unit` (`tokens`: the watermark tests; `samples`: MIA), as the
    settings declare it (`radio.detect.settings.Setting.unit`); every row when the frame has no setting column."""
    if "setting" not in tests.columns:
        return tests
    from radio.detect.settings import SETTINGS

    units = tests["setting"].map(lambda name: SETTINGS.get(str(name)).unit if name in SETTINGS else None)
    return tests[units == unit]
