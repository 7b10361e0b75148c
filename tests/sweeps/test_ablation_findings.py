"""The findings table's claims, each checked on folded test rows whose answer is known (no sweep is run)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sweeps.audits.radioactivity.findings import CLAIMS, findings
from sweeps.engine.grid import Grid

BASE = {"rho": 1.0, "lr": 0.003, "epochs": 3, "size": "tiny-1m", "k": 1, "scheme": "kgw", "method": "full"}
TESTS = {  # name: (setting, supervised, phi_size)
    "open-unsupervised": ("open", False, 0),
    "open-unsupervised-phi": ("open", False, 200),
    "open-supervised": ("open", True, 0),
    "closed-supervised": ("closed", True, 0),
    "mia": ("mia", True, None),
    "mia-d0": ("mia", False, None),
    "open-unsupervised-dist": ("open-dist", False, 0),
    "open-unsupervised-ref": ("open-ref", False, 0),
}


def _rows(log10p: dict[str, dict[float, float]], **point: Any) -> list[dict[str, Any]]:
    rows = []
    for test, per_rho in log10p.items():
        setting, supervised, phi = TESTS[test]
        for rho, value in per_rho.items():
            row = {**BASE, **point, "rho": rho, "test": test, "setting": setting, "supervised": supervised}
            row.update({"log10_pvalue": value, "phi_size": phi, "control": "none", "n_scored": 1000.0})
            if setting == "mia":
                row["d"] = 1.0 if test == "mia" else 0.0
            rows.append(row)
    return rows


def _table(rows: list[dict[str, Any]], **vary: list[Any]) -> pd.DataFrame:
    grid = Grid(base=BASE, vary={"rho": [0.0, 0.1, 0.5, 1.0], **vary}, seeds=(0,))
    return findings(pd.DataFrame(rows), BASE, grid).set_index("claim")


RHOS = (0.1, 0.5, 1.0)


def _line(values: tuple[float, float, float]) -> dict[float, float]:
    return dict(zip(RHOS, values, strict=True))


def test_the_powerful_test_wins_each_comparison_claim() -> None:
    rows = _rows(
        {
            "open-unsupervised": _line((-3, -10, -30)),
            "open-unsupervised-phi": _line((-5, -15, -40)),
            "open-supervised": _line((-6, -20, -60)),
            "closed-supervised": _line((-1, -4, -12)),
            "mia": _line((-3, -3, -3)),
            "mia-d0": _line((-0.3, -0.4, -0.2)),
        }
    )
    table = _table(rows)
    assert table.loc["open beats closed", "verdict"] == "holds"
    assert "open-supervised" in table.loc["open beats closed", "ours"]
    assert table.loc["supervised beats unsupervised", "verdict"] == "holds"
    assert table.loc["phi adds power", "verdict"] == "holds"
    assert table.loc["MIA needs supervision", "verdict"] == "holds"
    assert table.loc["detection grows with rho", "verdict"] == "holds"
    assert table.loc["open unsupervised detects small rho", "verdict"] == "does not hold"  # -3 at rho = 0.1
    assert table.loc["smaller k is more radioactive", "verdict"] == "not in this sweep"
    assert list(table.index) == [c.name for c in CLAIMS if not c.optional or c.name in table.index]
    assert "distribution-based reading beats top-1 reading" not in table.index  # no such test in this sweep


def test_the_comparison_claims_fail_when_the_weaker_test_wins() -> None:
    rows = _rows(
        {
            "open-unsupervised": _line((-8, -20, -40)),
            "open-unsupervised-phi": _line((-3, -10, -30)),
            "open-supervised": _line((-2.5, -5, -9)),
            "closed-supervised": _line((-6, -20, -60)),
            "mia": _line((-0.5, -0.2, -0.4)),
            "mia-d0": _line((-3, -4, -5)),
        }
    )
    table = _table(rows)
    assert table.loc["open beats closed", "verdict"] == "does not hold"
    assert table.loc["supervised beats unsupervised", "verdict"] == "does not hold"
    assert table.loc["phi adds power", "verdict"] == "does not hold"
    assert table.loc["MIA needs supervision", "verdict"] == "does not hold"  # d = 0 detected
    assert table.loc["open unsupervised detects small rho", "verdict"] == "holds"


def test_smaller_k_claim_reads_the_k_axis_at_the_base_rho() -> None:
    rows = []
    for k, value in ((1, -40.0), (2, -20.0), (4, -6.0)):
        rows += _rows({"open-unsupervised": {1.0: value}}, k=k)
    table = _table(rows, k=[1, 2, 4])
    assert table.loc["smaller k is more radioactive", "verdict"] == "holds"
    assert "k=1: -40.0, k=2: -20.0, k=4: -6.0" in table.loc["smaller k is more radioactive", "ours"]
    reversed_rows = []
    for k, value in ((1, -6.0), (2, -20.0), (4, -40.0)):
        reversed_rows += _rows({"open-unsupervised": {1.0: value}}, k=k)
    assert _table(reversed_rows, k=[1, 2, 4]).loc["smaller k is more radioactive", "verdict"] == "does not hold"


def test_controls_claim_counts_cells_below_minus_two() -> None:
    rows = _rows({"open-unsupervised": {0.0: -0.5, 1.0: -30.0}, "open-supervised": {0.0: -0.2, 1.0: -40.0}})
    assert _table(rows).loc["controls uniform", "verdict"] == "holds"
    bad = _rows({"open-unsupervised": {0.0: -5.0, 1.0: -30.0}, "open-supervised": {0.0: -3.0, 1.0: -40.0}})
    assert _table(bad).loc["controls uniform", "verdict"] == "does not hold"


def test_distribution_claim_sets_the_soft_test_beside_the_top1_test_of_the_same_kind() -> None:
    better = _rows({"open-unsupervised": _line((-3, -10, -30)), "open-unsupervised-dist": _line((-6, -14, -45))})
    row = _table(better).loc["distribution-based reading beats top-1 reading"]
    assert row["verdict"] == "holds"
    assert (
        row["ours"].startswith("open-unsupervised-dist rho=0.1: -6.0")
        and "open-unsupervised rho=0.1: -3.0" in row["ours"]
    )
    worse = _rows({"open-unsupervised": _line((-3, -10, -30)), "open-unsupervised-dist": _line((-2.8, -9, -25))})
    assert _table(worse).loc["distribution-based reading beats top-1 reading", "verdict"] == "does not hold"


def test_reference_claims_set_the_excess_test_beside_top1_and_read_its_small_rho_power() -> None:
    better = _rows(
        {
            "open-unsupervised": _line((-3, -10, -30)),
            "open-unsupervised-dist": _line((-2.8, -9, -25)),
            "open-unsupervised-ref": _line((-9, -25, -70)),
        }
    )
    table = _table(better)
    assert table.loc["reference-calibrated reading beats top-1 reading", "verdict"] == "holds"
    assert table.loc["reference-calibrated reading beats top-1 reading", "ours"].startswith("open-unsupervised-ref")
    # the paper's claim stays on the paper's test; radio's own row reads the reference-calibrated one
    assert table.loc["open unsupervised detects small rho", "verdict"] == "does not hold"
    small = table.loc["open unsupervised detects small rho, reference-calibrated"]
    assert small["verdict"] == "holds" and small["ours"] == "open-unsupervised-ref: rho=0.1 reaches p<1e-5 (-9.0)"
    assert table.loc["distribution-based reading beats top-1 reading", "verdict"] == "does not hold"
    worse = _rows({"open-unsupervised": _line((-6, -10, -30)), "open-unsupervised-ref": _line((-2, -9, -25))})
    table = _table(worse)
    assert table.loc["reference-calibrated reading beats top-1 reading", "verdict"] == "does not hold"
    assert table.loc["open unsupervised detects small rho, reference-calibrated", "verdict"] == "does not hold"
    assert (
        "reference-calibrated reading beats top-1 reading"
        not in _table(_rows({"open-unsupervised": _line((-3, -10, -30))})).index
    )
