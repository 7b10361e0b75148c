"""The `reproduction` tables: the paper's numbers beside a sweep's, from a results frame built here."""

from __future__ import annotations

import math

import pandas as pd

from sweeps.audits.radioactivity.config import load_preset
from sweeps.audits.radioactivity.report import build_report
from sweeps.audits.radioactivity.reproduction import PAPER, describe_setup
from sweeps.audits.radioactivity.sweep import _grid

TESTS = {  # name: (setting, supervised, phi_size)
    "open-unsupervised": ("open", False, 0),
    "closed-supervised-phi": ("closed", True, 40),
    "mia": ("mia", True, 0),
    "open-unsupervised-ref": ("open-ref", False, 0),
}


def _frame(values: dict[tuple[str, float], float], base: dict[str, object]) -> pd.DataFrame:
    rows = []
    for (test, rho), value in values.items():
        setting, supervised, phi = TESTS[test]
        trial = f"t{rho:g}"
        common = {**base, "rho": rho, "seed": 0, "trial_id": trial}
        rows.append(
            {
                **common,
                "test": test,
                "control": "none",
                "setting": setting,
                "supervised": supervised,
                "log10_pvalue": value,
                "n_scored": 1000.0 * (1 + rho),
                "phi_size": phi,
            }
        )
        rows.append(
            {
                **common,
                "test": f"{test}/wrong-key",
                "control": "wrong-key",
                "setting": setting,
                "supervised": supervised,
                "log10_pvalue": -0.3,
                "n_scored": 900.0,
                "phi_size": phi,
            }
        )
    return pd.DataFrame(rows)


def test_reproduction_puts_the_papers_numbers_beside_ours_with_verdicts() -> None:
    config = load_preset("tiny")
    grid = _grid(config)
    base = dict(grid.base)
    values = {
        ("open-unsupervised", 0.0): -0.2,
        ("open-unsupervised", 0.05): -6.5,
        ("open-unsupervised", 0.1): -9.0,
        ("closed-supervised-phi", 0.0): -2.5,
        ("closed-supervised-phi", 0.05): -7.0,
        ("closed-supervised-phi", 0.1): -30.0,
        ("mia", 0.05): -3.0,
    }
    report = build_report(_frame(values, base), grid, setup=describe_setup(config))
    table = report.tables["reproduction"]
    assert len(table) == len(PAPER)  # one test of each kind here; MIA has no paper figure of its own
    assert "reproduction" in report.console and "reproduction_setup" not in report.console

    def row(paper_start: str, test: str) -> pd.Series:
        hit = table[table["paper"].str.startswith(paper_start) & (table["test"] == test)]
        assert len(hit) == 1, table.to_dict("records")
        return hit.iloc[0]

    headline = row("p < 1e-5 at rho = 5%", "open-unsupervised")
    assert headline["ours_log10p"] == -6.5 and headline["verdict"] == "reproduced"
    assert headline["ours_tokens"] == 1050
    one_percent = row("p < 1e-5 at rho = 1%", "closed-supervised-phi")
    assert one_percent["verdict"] == "not in this sweep" and one_percent["ours_at"] == "rho=0.05 (no rho=0.01)"
    value = row("p = 2.6e-24", "closed-supervised-phi")
    assert math.isclose(value["paper_log10p"], -23.59, abs_tol=0.01) and value["paper_tokens"] == 248_200
    assert value["verdict"].startswith("detected, weaker")
    control = table[table["paper"].str.startswith("p uniform") & (table["test"] == "closed-supervised-phi")]
    assert control.iloc[0]["verdict"].startswith("not reproduced")  # -2.5: this control was detected
    uniform = table[table["paper"].str.startswith("p uniform") & (table["test"] == "open-unsupervised")]
    assert uniform.iloc[0]["verdict"] == "reproduced"

    setup = report.tables["reproduction_setup"].set_index("what")
    assert setup.loc["vocabulary", "paper"].startswith("32,000")
    assert setup.loc["vocabulary", "ours"].startswith(f"{config.prepare.tokenizer.vocab_size:,}")
    assert "open-unsupervised" in setup.loc["tokens scored per test", "ours"]


def test_reproduction_without_a_test_of_the_papers_kind_says_so() -> None:
    config = load_preset("tiny")
    grid = _grid(config)
    report = build_report(
        _frame({("open-unsupervised", 0.05): -1.0, ("open-unsupervised", 1.0): -20.0}, dict(grid.base)), grid
    )
    table = report.tables["reproduction"]
    closed = table[table["paper"].str.contains("rho = 1%")]
    assert closed.iloc[0]["test"] == "closed supervised"  # the kind of test the sweep lacks
    assert closed.iloc[0]["ours_at"] == closed.iloc[0]["verdict"] == "not in this sweep"
    assert "reproduction_setup" not in report.tables  # no set-up given
    control = table[table["paper"].str.startswith("p uniform")].iloc[0]
    assert control["ours_at"] == "not in this sweep" and pd.isna(control["ours_log10p"])  # not read off rho > 0
    findings = report.tables["findings"].set_index("claim")
    # a miss says why in tokens: scored, and needed at the same per-token evidence (linear in tokens)
    assert (
        "misses p<1e-5 (-1.0; 1,050 tokens scored, about 5,250 needed)"
        in findings.loc["open unsupervised detects small rho", "ours"]
    )


def test_an_axis_moved_only_by_extra_points_gets_its_table_where_they_sit() -> None:
    """The ablations preset runs Aaronson only at k = 4: its table compares it with KGW at k = 4, and says so."""
    config = load_preset("ablations")
    grid = _grid(config)
    base = dict(grid.base)
    frames = []
    for name, point, value in [
        ("base", {}, -50.0),
        ("k4", {"k": 4}, -0.5),
        ("aaronson-k4", {"scheme": "aaronson", "k": 4}, -9.0),
        ("aaronson-k4-rho0", {"scheme": "aaronson", "k": 4, "rho": 0.0}, -0.1),
    ]:
        frame = _frame({("open-unsupervised", 1.0): value}, {**base, **point})
        frame["trial_id"] = name
        frame["rho"] = point.get("rho", 1.0)
        frames.append(frame)
    report = build_report(pd.concat(frames, ignore_index=True), grid)
    table = report.tables["ablation_scheme"].set_index("scheme")
    assert table.loc["kgw", "open-unsupervised mean"] == -0.5  # KGW at k = 4, not the base point's k = 1
    assert table.loc["aaronson", "open-unsupervised mean"] == -9.0
    assert report.captions["ablation_scheme"].endswith("Other axes at the base point except k=4.")
    assert report.tables["ablation_k"]["k"].tolist() == [1, 4]  # KGW only: the scheme held at the base


def test_radios_reading_tests_stand_beside_the_papers_top1_rows() -> None:
    grid = _grid(load_preset("tiny"))
    values = {
        ("open-unsupervised", 0.0): -0.2,
        ("open-unsupervised", 0.05): -1.0,
        ("open-unsupervised-ref", 0.0): -0.4,
        ("open-unsupervised-ref", 0.05): -6.0,
    }
    table = build_report(_frame(values, dict(grid.base)), grid).tables["reproduction"]
    headline = table[table["paper"].str.startswith("p < 1e-5 at rho = 5%")].set_index("test")
    assert list(headline.index) == ["open-unsupervised", "open-unsupervised-ref"]  # the paper's test first
    assert headline.loc["open-unsupervised", "verdict"] == "not reproduced"
    assert headline.loc["open-unsupervised-ref", "verdict"] == "reproduced"
    uniform = table[table["paper"].str.startswith("p uniform") & (table["test"] == "open-unsupervised-ref")]
    assert uniform.iloc[0]["verdict"] == "reproduced"
