"""The memorization evaluation's tables from an audit results frame: per-prompt scores and rates, AUC / TPR at
both levels, the kind-ranking findings line (frames built by hand, answers known)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radio.replication.memorization_eval import (
    denoised_agreement,
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
    assert len(lines) == 1 and lines[0].startswith("step=1000: noise-difference separates the replicating kinds")


def test_kind_ranking_judges_separation_not_the_order_of_near_ties() -> None:
    """Keywords (0%) and unrelated-with-keywords (0%) swapping places changes the Spearman correlation, not the
    verdict; a non-replicating kind scoring above a replicating one changes the verdict."""
    table = memorization_scores_table(_frame(), ["step"], RULE)
    swapped = table.copy()
    swapped.loc[swapped["kind"] == "keywords", "score"] = 0.1  # now under unrelated-with-keywords' 0.55
    assert "noise-difference separates" in kind_ranking(swapped, ["step"])[0]
    broken = table.copy()
    broken.loc[broken["kind"] == "keywords", "score"] = 4.0  # above long-related's 3.825
    line = kind_ranking(broken, ["step"])[0]
    assert "noise-difference does not separate" in line and "by score: short-related, cooccurring" in line
    nothing = table.assign(replicated_rate=0.0)
    assert "has nothing to separate" in kind_ranking(nothing, ["step"])[0]


def test_denoised_agreement_discounts_a_shared_brightness() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(size=48)
    copies = image + 0.05 * rng.normal(size=(5, 48))  # five seeds, one image
    dark = -3.0 + rng.normal(size=(5, 48))  # five seeds, five images that share only a dark mean
    assert denoised_agreement(copies).min() > 0.98
    assert denoised_agreement(dark).max() < 0.6
    # uncentred, the dark images would agree: their shared mean dominates the cosine
    unit = dark / np.linalg.norm(dark, axis=1, keepdims=True)
    assert seed_agreement(unit).min() > 0.85
    assert denoised_agreement(np.ones((3, 4))).tolist() == [0.0, 0.0, 0.0]  # nothing left after centring


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


def _with_copies(frame: pd.DataFrame) -> pd.DataFrame:
    """The training-copy fields: the planted replications, plus the painter control copying a training image on
    every seed and the keywords prompt on one (its second seed): 1 of 4, under the 30% prompt bar."""
    extra = {"control-painter": "1111", "keywords": "0100"}
    frame = frame.copy()
    bits = []
    for _, row in frame.iterrows():
        start = int(row["seed_start"])  # the block's first seed: 0 or 2
        more = extra.get(row["kind"], "0000")[start : start + 2]
        bits.append("".join("1" if "1" in pair else "0" for pair in zip(row[f"flags:{RULE}"], more, strict=True)))
    frame[f"copy_flags:{RULE}"] = bits
    frame[f"copied:{RULE}"] = [b.count("1") for b in bits]
    frame["nearest_values"] = ["0.9;0.8"] * len(frame)
    return frame


def test_quality_against_both_ground_truths() -> None:
    planted_only = memorization_quality(_frame(), memorization_scores_table(_frame(), ["step"], RULE), ["step"], RULE)
    frame = _with_copies(_frame())
    table = memorization_scores_table(frame, ["step"], RULE)
    rates = table.set_index("kind")
    assert rates.loc["control-painter", "copied_rate"] == 1.0 and rates.loc["control-painter", "replicated_rate"] == 0
    assert rates.loc["keywords", "copied_rate"] == 0.25 and rates.loc["long-related", "copied_rate"] == 0.75
    quality = memorization_quality(frame, table, ["step"], RULE)
    assert list(quality.columns[:4]) == ["step", "detector", "label", "level"]
    assert sorted(set(quality["label"])) == ["planted", "training-copy"]
    by = quality.set_index(["label", "level"])
    # the planted labels are those of a frame without the new fields, number for number
    for level in ("prompt", "generation"):
        for column in ("auc", "tpr", "n_pos", "n_neg"):
            assert by.loc[("planted", level), column] == planted_only.set_index("level").loc[level, column]
    # prompts: short 5.125, long 3.825, cooccurring 4.15 and the painter control 0.25 positive; keywords 1.05 and
    # unrelated 0.55 negative: the three related beat both negatives, the control neither -> 6 / 8
    prompt = by.loc[("training-copy", "prompt")]
    assert (prompt["n_pos"], prompt["n_neg"]) == (4, 2) and prompt["auc"] == pytest.approx(0.75)
    gen = by.loc[("training-copy", "generation")]
    positives = [5.0, 6.0, 5.5, 4.0, 4.5, 5.2, 4.8, 3.9, 4.1, 4.2, 0.3, 0.2, 0.1, 0.4, 1.2]
    negatives = [1.0, 1.1, 0.9, 0.8, 0.5, 0.7, 0.6, 0.4, 4.4]
    assert (gen["n_pos"], gen["n_neg"]) == (15, 9)
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    assert gen["auc"] == pytest.approx(wins / (15 * 9))


def test_rows_without_copy_fields_give_the_planted_label_only() -> None:
    old = _frame()
    new = _with_copies(_frame()).assign(step=2000)
    frame = pd.concat([old, new], ignore_index=True)  # a trial recorded before the fields, one after
    table = memorization_scores_table(frame, ["step"], RULE)
    assert "copied_rate" not in table.columns
    quality = memorization_quality(frame, table, ["step"], RULE)
    assert set(quality["label"]) == {"planted"} and len(quality) == 2 * 2


def test_roc_points_per_detector_and_label() -> None:
    from radio.replication.memorization_eval import roc_points

    frame = _with_copies(_frame())
    frame["agreement_values"] = ["0.9;0.2"] * len(frame)
    curves = roc_points(frame, RULE)
    assert set(curves) == {(d, t) for d in ("noise-difference", "seed-agreement") for t in ("planted", "training-copy")}
    fpr, tpr = curves[("noise-difference", "training-copy")]
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert set(roc_points(_frame(), RULE)) == {("noise-difference", "planted")}


def test_console_tables_with_both_ground_truths() -> None:
    from sweeps.audits.replication.report import _display_memorization, _display_scores

    frame = _with_copies(_frame())
    frame["agreement_values"] = ["0.9;0.2"] * len(frame)
    table = memorization_scores_table(frame, ["step"], RULE)
    shown = _display_memorization(memorization_quality(frame, table, ["step"], RULE), frame)
    assert len(shown) == 4 and list(shown.columns[:2]) == ["detector", "label"]
    assert set(zip(shown["detector"], shown["label"], strict=True)) == {
        (d, t) for d in ("noise-difference", "seed-agreement") for t in ("planted", "training-copy")
    }
    scores = _display_scores(table, frame)
    assert list(scores.columns) == ["prompt", "kind", "score", "agreement", "replicated_rate", "copied_rate"]
    assert len(scores) == 6
