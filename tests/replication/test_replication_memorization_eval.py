"""The memorization evaluation's tables from an audit results frame: per-prompt scores and rates, AUC / TPR at
both levels, the kind-ranking findings line (frames built by hand, answers known)."""

from __future__ import annotations

import pandas as pd
import pytest

from radio.replication.memorization_eval import kind_ranking, memorization_quality, memorization_scores_table

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
    quality = memorization_quality(frame, table, ["step"], RULE).set_index("level")
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
