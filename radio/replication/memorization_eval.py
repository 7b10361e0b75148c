"""The memorization detector as an evaluation of the replication audit: scores against the replication labels.

An audit evaluation task (a prompt and a block of seeds) adds `block_fields` to its row: the data-free score of
each of its seeds (`memorization_values`, the same trajectories the generations followed) and their mean. From
the results frame, `memorization_scores_table` gives one row per (trial, prompt): kind, score and the measured
replicated rate under a threshold rule; `memorization_quality` the ROC AUC and TPR at 1% FPR per trial and ground
truth, at two levels: prompts (label: rate >= `min_rate`) and generations (label: that seed's image replicated);
`kind_ranking` says, per detector, whether it singles out the kinds the training-set audit finds replicating.

A second model-only score (`denoised_agreement`) reads memorization off the first sampling step: each seed's
estimate of the clean image there (x0 from the first step's output, the same UNet passes as the noise
difference's), mean-removed, and its cosine to the nearest estimates of the other seeds. The noise difference
measures how far a prompt moves the prediction from the unconditional one: at the first steps that is the shift of
the prompt's mean image, as large for a prompt whose images merely share a colour far from the corpus average (a
night sky) as for one that copies a training image. A prompt that copies one image gives the same estimate whatever
the seed; one that draws varied images gives estimates that follow the start noise. It is Carlini's criterion
(below) without sampling to the end.

A third data-free score rides along (`seed_agreement`, after Carlini et al., "Extracting Training Data from
Diffusion Models", USENIX Security 2023): a memorized prompt draws the same image whatever the seed, so each
generation is scored by how close its nearest other generations of the same prompt and seed block are (cosine of
the audit's image embeddings; no training image is used). Every detector gets rows in `memorization_quality`.

Two ground truths (`LABELS`, the `label` column of `memorization_quality`): `planted`, the audit's own labels (a
generation replicated when it is as close to a member of the planted artwork's cluster as the rule's threshold;
a prompt when it does so in at least `MEMORIZED_RATE` of its seeds), and `training-copy`, the same test against
every training image (the analysis's reference set, the whole corpus up to its cap; the same rule and threshold
value; per-prompt column `copied_rate`). The second exists because a model also reproduces training images
nobody planted: Webster ("A Reproducible Extraction of Training Images from Diffusion Models", 2023) calls a
generation that reproduces the layout shared by many near-identical training images a "template verbatim", and
Wen et al. took their memorized prompts from Webster's set, template verbatims included, so their detector is
meant to fire on them. On the synthetic corpus the subject prompt ("an astronaut in a white spacesuit": 500
training images in one near-canonical pose on a near-black background) is such a case: a false positive under
`planted`, a true one under `training-copy`. The cluster's members are in the reference set (kept first under
its cap), so every planted replication is also a training copy: `training-copy` adds positives to `planted`'s,
which are unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from radio.replication.memorization import detection_quality, differences_and_estimates
from radio.replication.prompts import WORD_KINDS

MEMORIZED_RATE = 0.30  # the audit's "often replicates" bar (the report's related-kind claims)
# Ground truth -> (the frame's per-generation flags column prefix, the scores table's per-prompt rate column).
LABELS = {"planted": ("flags", "replicated_rate"), "training-copy": ("copy_flags", "copied_rate")}
# Bumped when an evaluation row gains detector fields (2: denoised agreement), so the sweep's trial ids change.
DETECTORS_VERSION = 2
# Detector name -> (the frame's per-generation values column, the scores table's per-prompt column).
DETECTORS = {
    "noise-difference": ("memorization_values", "score"),
    "denoised-agreement": ("denoised_agreement_values", "denoised_agreement"),
    "seed-agreement": ("agreement_values", "agreement"),
}


def seed_agreement(embedded: np.ndarray, neighbours: int = 3) -> np.ndarray:
    """Per generation, the mean cosine to its `neighbours` most similar other generations of the same prompt
    (rows of `embedded`, L2-normalised); a prompt that replicates one image gives values near 1 on every seed.
    With fewer than two generations the value is NaN (nothing to agree with)."""
    x = np.asarray(embedded, dtype=np.float64)
    n = len(x)
    if n < 2:
        return np.full(n, np.nan)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    k = max(1, min(neighbours, n - 1))
    top = -np.sort(-sims, axis=1)[:, :k]
    return top.mean(axis=1)


def denoised_agreement(estimates: np.ndarray, neighbours: int = 3) -> np.ndarray:
    """Per seed, `seed_agreement` of the first-step clean estimates (rows of `estimates`, one per seed of one
    prompt) after removing each row's own mean: a prompt's shared overall brightness (a night sky is dark in
    every seed) is not agreement on an image. A constant row (nothing left after centring) agrees with nothing."""
    x = np.asarray(estimates, dtype=np.float64)
    centred = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit = np.divide(centred, norms, out=np.zeros_like(centred), where=norms > 0)
    return seed_agreement(unit, neighbours)


def agreement_fields(embedded: np.ndarray, neighbours: int = 3) -> dict[str, Any]:
    """Row fields of one evaluation task: `agreement` (mean over its seeds) and `agreement_values`."""
    values = seed_agreement(embedded, neighbours)
    return {"agreement": float(np.nanmean(values)), "agreement_values": ";".join(f"{v:.6g}" for v in values)}


def block_fields(
    adapter: Any, prompt: str, seeds: Sequence[int], *, steps: int, num_inference_steps: int, guidance_scale: float
) -> dict[str, Any]:
    """Row fields of one evaluation task, both model-only detectors on its seeds: `memorization` (Wen et al.'s
    noise difference, mean over the seeds) with `memorization_values`, and `denoised_agreement` (mean) with
    `denoised_agreement_values`."""
    prompts, seeds = [prompt] * len(seeds), list(seeds)
    settings = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale}
    differences, estimates = differences_and_estimates(adapter, prompts, seeds, steps=steps, **settings)
    values = differences.mean(axis=1)
    agreement = denoised_agreement(estimates)
    return {
        "memorization": float(values.mean()),
        "memorization_values": ";".join(f"{v:.6g}" for v in values),
        "denoised_agreement": float(np.nanmean(agreement)) if np.isfinite(agreement).any() else float("nan"),
        "denoised_agreement_values": ";".join(f"{v:.6g}" for v in agreement),
    }


def _values(text: str) -> np.ndarray:
    return np.array([float(v) for v in str(text).split(";") if v], dtype=np.float64)


def _mean_of(column: pd.Series) -> float:
    values = np.concatenate([_values(v) for v in column])
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _flags(text: str) -> np.ndarray:
    return np.frombuffer(str(text).encode(), dtype=np.uint8) == ord("1")


def _has_copies(frame: pd.DataFrame, rule: str) -> bool:
    """Whether every row holds the training-copy fields (rows recorded before them do not)."""
    column = f"copy_flags:{rule}"
    return column in frame.columns and bool(frame[column].notna().all()) and len(frame) > 0


def memorization_scores_table(frame: pd.DataFrame, axes: Sequence[str], rule: str) -> pd.DataFrame:
    """One row per (trial axes, prompt): kind, prompt, score (mean over all its seeds), n, replicated rate (the
    planted artwork) and, where the rows hold it, copied rate (any training image)."""
    # The noise difference is `score`; each other detector whose values the rows hold gets its own column.
    others = {score: values for values, score in DETECTORS.values() if score != "score" and values in frame.columns}
    with_copies = _has_copies(frame, rule)
    columns = [
        *axes,
        "kind",
        "prompt",
        "score",
        *others,
        "n",
        "replicated_rate",
        *(["copied_rate"] if with_copies else []),
    ]
    if "memorization_values" not in frame.columns:
        return pd.DataFrame(columns=columns)
    records = []
    keys = [*axes, "prompt_index", "kind", "prompt"]
    for values, part in frame.groupby(keys, sort=True, dropna=False):
        named = dict(zip(keys, values, strict=True))
        scores = np.concatenate([_values(v) for v in part["memorization_values"]])
        n = int(part["generated"].sum())
        copied = int(part[f"copied:{rule}"].sum()) / n if with_copies and n else float("nan")
        records.append(
            {
                **{a: named[a] for a in axes},
                "kind": named["kind"],
                "prompt": named["prompt"],
                "score": float(scores.mean()) if scores.size else float("nan"),
                **{score: _mean_of(part[values]) for score, values in others.items()},
                "n": n,
                "replicated_rate": int(part[f"replicated:{rule}"].sum()) / n if n else float("nan"),
                **({"copied_rate": copied} if with_copies else {}),
            }
        )
    return pd.DataFrame.from_records(records, columns=columns)


def memorization_quality(
    frame: pd.DataFrame,
    table: pd.DataFrame,
    axes: Sequence[str],
    rule: str,
    min_rate: float = MEMORIZED_RATE,
    max_fpr: float = 0.01,
) -> pd.DataFrame:
    """Per trial, detector (`DETECTORS` present in the frame), label (`LABELS` present: `planted`, the planted
    artwork replicated; `training-copy`, any training image copied) and level (`prompt`: rate >= `min_rate`;
    `generation`: that seed's flag): ROC AUC, TPR at `max_fpr`, positives and negatives."""
    records = []
    if not len(table):
        columns = [*axes, "detector", "label", "level", "auc", "tpr", "max_fpr", "threshold", "n_pos", "n_neg"]
        return pd.DataFrame(columns=columns)
    groups = table.groupby(list(axes), sort=True, dropna=False) if axes else [((), table)]
    for values, part in groups:
        named = dict(zip(axes, values if isinstance(values, tuple) else (values,), strict=True))
        rows = frame
        for axis, value in named.items():
            rows = rows[rows[axis] == value]
        labels = {}
        for name, (flags_prefix, rate_column) in LABELS.items():
            if rate_column in part.columns and f"{flags_prefix}:{rule}" in rows.columns:
                flags = np.concatenate([_flags(v) for v in rows[f"{flags_prefix}:{rule}"]])
                labels[name] = (part[rate_column].to_numpy() >= min_rate, flags)
        for detector, (values_column, score_column) in DETECTORS.items():
            if values_column not in rows.columns or score_column not in part.columns:
                continue
            scores = np.concatenate([_values(v) for v in rows[values_column]])
            for name, (prompt_labels, flags) in labels.items():
                levels = {"prompt": (part[score_column].to_numpy(), prompt_labels)}
                if scores.size == flags.size:
                    levels["generation"] = (scores, flags)
                records.extend(_quality_records({**named, "detector": detector, "label": name}, levels, max_fpr))
    return pd.DataFrame.from_records(records)


def _quality_records(
    named: Mapping[str, Any], levels: Mapping[str, tuple[np.ndarray, np.ndarray]], max_fpr: float
) -> list[dict[str, Any]]:
    records = []
    for level, (s, y) in levels.items():
        keep = np.isfinite(s)  # a one-seed block has no agreement value
        q = detection_quality(s[keep], y[keep], max_fpr=max_fpr)
        records.append(
            {
                **named,
                "level": level,
                "auc": q.auc,
                "tpr": q.tpr,
                "max_fpr": max_fpr,
                "threshold": q.threshold,
                "n_pos": q.n_pos,
                "n_neg": q.n_neg,
            }
        )
    return records


def kind_ranking(table: pd.DataFrame, axes: Sequence[str], min_rate: float = MEMORIZED_RATE) -> list[str]:
    """Per trial and detector present, one findings line: does the model-only score single out the five kinds the
    training-set audit finds replicating (rate >= `min_rate`), i.e. does every replicating kind score above every
    other; with both orders and their Spearman correlation (ties averaged) for reading. Separation, not the
    correlation, is the verdict: two kinds that both replicate at 0-2% swap places on noise alone."""
    from scipy.stats import spearmanr

    lines = []
    five = table[table["kind"].isin(list(WORD_KINDS))] if len(table) else table
    groups = five.groupby(list(axes), sort=True, dropna=False) if axes and len(five) else [((), five)]
    for values, part in groups:
        if len(part) < 2:
            continue
        label = " ".join(
            f"{a}={v}" for a, v in zip(axes, values if isinstance(values, tuple) else (values,), strict=True)
        )
        replicating = part["replicated_rate"].to_numpy() >= min_rate
        by_rate = part.sort_values("replicated_rate", ascending=False)["kind"].tolist()
        for detector, (_, column) in DETECTORS.items():
            if column not in part.columns or not part[column].notna().all():
                continue
            scores = part[column].to_numpy(dtype=np.float64)
            if replicating.all() or not replicating.any():
                verdict = f"has nothing to separate (no kind replicates at >= {min_rate:.0%}, or all do)"
            elif scores[replicating].min() > scores[~replicating].max():
                verdict = "separates the replicating kinds from the others as the training-set audit does"
            else:
                verdict = "does not separate the replicating kinds from the others"
            rates = part["replicated_rate"].to_numpy(dtype=np.float64)
            varied = np.ptp(scores) > 0 and np.ptp(rates) > 0  # a constant input has no rank correlation
            rho = f"{float(spearmanr(scores, rates).statistic):.2f}" if varied else "n/a"
            by_score = part.assign(_s=scores).sort_values("_s", ascending=False)["kind"].tolist()
            lines.append(
                f"{label}: {detector} {verdict} (Spearman {rho}); by score: {', '.join(by_score)}; "
                f"by replicated rate: {', '.join(by_rate)}"
            )
    return lines


def roc_points(frame: pd.DataFrame, rule: str) -> Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Per (detector, label) present, the generation-level ROC curve (fpr, tpr) of the whole frame, for the plot."""
    from radio.replication.memorization import roc_curve

    curves = {}
    for name, (flags_prefix, _) in LABELS.items():
        column = f"{flags_prefix}:{rule}"
        if not len(frame) or column not in frame.columns or frame[column].isna().any():
            continue
        flags = np.concatenate([_flags(v) for v in frame[column]])
        for detector, (values_column, _) in DETECTORS.items():
            if values_column not in frame.columns:
                continue
            scores = np.concatenate([_values(v) for v in frame[values_column]])
            keep = np.isfinite(scores)
            if scores.size == flags.size and keep.any():
                fpr, tpr, _ = roc_curve(scores[keep], flags[keep])
                curves[(detector, name)] = (fpr, tpr)
    return curves
