"""The memorization evaluation's tables from an audit results frame: per-prompt scores and rates, AUC / TPR at
both levels, the kind-ranking findings line (frames built by hand, answers known)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radio.replication.memorization_eval import (
    kind_ranking,
    memorization_quality,
    memorization_scores_table,
    seed_agreement,
)

RULE = "least-similar-member"


def _frame() -> pd.DataFrame:
    # Two seed blocks of two seeds per prompt; related kinds replicate and score high, the others neither.
    spec = {
        "keywords": (0, [1.0, 1.2, 1.1, 0.9], "0000"),
        "short-related": (1, [5.0, 6.0, 5.5, 4.0], "1111"),
        "long-related": (2, [4.5, 5.2, 4.8, 0.8], "1110"),
        "unrelated-with-keywords": (3, [0.5, 0.7, 0.6, 0.4], "0000"),
        "cooccurring-without-keywords": (4, [3.9, 4.1, 4.4, 4.2], "1101"),
        "control-painter": (5, [0.3, 0.2, 0.1, 0.4], "0000"),
    }
    rows = []
    for kind, (index, values, flags) in spec.items():
        for block in range(2):
            part = values[2 * block : 2 * block + 2]
            bits = flags[2 * block : 2 * block + 2]
            rows.append(
                {
                    "step": 1000,
                    "prompt_index": index,
                    "kind": kind,
                    "prompt": f"p{index}",
                    "generated": 2,
                    "seed_start": 2 * block,
                    f"replicated:{RULE}": bits.count("1"),
                    f"flags:{RULE}": bits,
                    "memorization": sum(part) / 2,
                    "memorization_values": ";".join(map(str, part)),
                }
            )
    return pd.DataFrame(rows)


def test_scores_table_and_quality_at_both_levels() -> None:
    frame = _frame()
    table = memorization_scores_table(frame, ["step"], RULE)
    row = table[table["kind"] == "long-related"].iloc[0]
    assert row["score"] == pytest.approx((4.5 + 5.2 + 4.8 + 0.8) / 4) and row["replicated_rate"] == 0.75
    quality = memorization_quality(frame, table, ["step"], RULE)
    assert set(quality["detector"]) == {"noise-difference"}  # no agreement values in this frame
    quality = quality.set_index("level")
    assert quality.loc["prompt", "auc"] == 1.0 and quality.loc["prompt", "n_pos"] == 3
    # Generations: the two related seeds that did not replicate (0.8 and 4.4) score among the negatives.
    gen = quality.loc["generation"]
    assert (gen["n_pos"], gen["n_neg"]) == (10, 14)
    negatives = [1.0, 1.2, 1.1, 0.9, 0.8, 0.5, 0.7, 0.6, 0.4, 4.4, 0.3, 0.2, 0.1, 0.4]
    positives = [5.0, 6.0, 5.5, 4.0, 4.5, 5.2, 4.8, 3.9, 4.1, 4.2]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    assert gen["auc"] == pytest.approx(wins / 140)
    lines = kind_ranking(table, ["step"])
    assert len(lines) == 1 and "ranks the five kinds as the training-set audit does" in lines[0]


def test_seed_agreement_is_high_where_the_seeds_draw_one_image() -> None:
    rng = np.random.default_rng(0)
    one = rng.normal(size=16)
    copies = one + 0.05 * rng.normal(size=(6, 16))  # six seeds, one image
    spread = rng.normal(size=(6, 16))  # six seeds, six images
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    assert seed_agreement(unit(copies), 3).min() > 0.98
    assert seed_agreement(unit(spread), 3).max() < 0.8
    # the k nearest others, never the image itself
    assert seed_agreement(unit(np.array([[1.0, 0.0], [0.0, 1.0]])), 3).tolist() == [0.0, 0.0]
    assert np.isnan(seed_agreement(unit(copies[:1]))).all()


def test_both_detectors_rank_with_agreement_values_present() -> None:
    frame = _frame()
    # seed agreement: perfect on the generations (replicated seeds agree at 0.9+, the others below 0.5)
    frame["agreement_values"] = [
        ";".join("0.95" if bit == "1" else "0.3" for bit in bits) for bits in frame[f"flags:{RULE}"]
    ]
    table = memorization_scores_table(frame, ["step"], RULE)
    assert table.set_index("kind").loc["long-related", "agreement"] == pytest.approx((0.95 * 3 + 0.3) / 4)
    quality = memorization_quality(frame, table, ["step"], RULE).set_index(["detector", "level"])
    assert quality.loc[("seed-agreement", "generation"), "auc"] == 1.0
    assert quality.loc[("seed-agreement", "generation"), "tpr"] == 1.0
    assert quality.loc[("noise-difference", "generation"), "auc"] < 1.0


@pytest.mark.parametrize("steps", [[1000], [500, 1000]])
def test_console_table_of_one_or_more_trials(steps: list[int]) -> None:
    from sweeps.audits.replication.report import _display_memorization

    frame = pd.concat([_frame().assign(step=s) for s in steps], ignore_index=True)
    frame["agreement_values"] = ["0.9;0.2"] * len(frame)
    table = memorization_scores_table(frame, ["step"], RULE)
    shown = _display_memorization(memorization_quality(frame, table, ["step"], RULE), frame)
    # one row per (trial, detector); the step column only where the sweep varied it
    assert len(shown) == 2 * len(steps) and ("step" in shown.columns) == (len(steps) > 1)
    assert {"auc (generation)", "auc (prompt)", "tpr (generation)", "n_pos (prompt)"} <= set(shown.columns)
