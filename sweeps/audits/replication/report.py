"""Tables, plots, gates and trial names of the replication sweep, from the engine's results frame (a row per
(trial, prompt, seed block)) and each trial's analysis folder.

Tables (issue 11 item 4; rates are fractions, intervals 95% Clopper–Pearson):
- `clusters`: rank, size, top words with document frequencies, thresholds under each rule, the target flag;
- `replication_by_kind`: one row per (trial, kind, prompt, rule): `kind`, `prompt`, `rule`, `n`, `replicated`,
  `rate`, `ci_low`, `ci_high`, plus the axis values (also `replication_by_kind.csv` on the parent);
- `object_rates`: `prompt_kind` (subject / control), `rate`, `ci_low`, `ci_high`, `train_rate` (and the training
  interval), per trial (also `object_rates.csv`);
- `caption_similarity`: every prompt's similarity to its nearest training caption;
- `word_pull`: the share of each word's keyword-filtered data that lies in the target cluster;
- `mcnemar`: exact McNemar between every two prompts of a trial, on paired seeds, per rule;
- `detector_agreement`; `quality_gates` (each gate, its value, whether it passed);
- `expectations`: the paper's claims under the headline rule (keywords alone and unrelated-with-keywords at most
  5%, the related kinds at least 30%, the object above its training rate's lower bound, its control near 0),
  each met or not by the point estimate and by the whole interval.
Plots: replication rate against duplication count, guidance scale and checkpoint step, with intervals.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radio.replication.artifacts import bits_to_flags
from radio.replication.audit import ANALYSIS_JSON
from sweeps.audits.replication.config import AXES, HEADLINE_RULE
from sweeps.engine.grid import Grid
from sweeps.engine.outcomes import Report, TrialOutcome
from sweeps.engine.tables import held_axes, new_figure, rows_at_base

TRIAL_COLUMNS = [*AXES, "seed"]
CONTROL_MAX = 0.02
AGREEMENT_MIN = 0.80
TARGET_MAX_RANK = 3
DESCRIPTION = """Replication audit (Naseh, Roh, Houmansadr, arXiv 2312.03692): does the model reproduce a training
image when the prompt holds certain words, and does it draw an object its training captions never named?

Tables (artifacts `tables/`, also MLflow tables; rates are fractions with 95% Clopper–Pearson intervals):
- `replication_by_kind`: per trial, prompt kind, prompt and threshold rule: generations `n`, `replicated`, `rate`,
  `ci_low`, `ci_high` (also `replication_by_kind.csv`). Every rule is logged: the rule moves the headline.
- `object_rates`: the object's rate in generations of the subject prompt and of the same-scene control, against
  its rate in the subject's training images (`train_rate`; also `object_rates.csv`).
- `clusters`, `caption_similarity`, `word_pull`, `mcnemar` (paired seeds), `detector_agreement`.
- `quality_gates`: controls at most 2% replication, detector agreement at least 80%, target cluster in the top 3.
- `expectations`: the paper's claims (least-similar-member rule), each met or not, by the estimate and the interval.
- `memorization_scores`, `memorization_quality`, `token_attribution`, `memorization_findings`: the data-free
  detector (Wen et al., ICLR 2024: the text-conditional minus unconditional noise prediction over the first
  sampling steps) and seed agreement (Carlini et al.) per prompt, their ROC AUC and TPR at 1% FPR against two
  ground truths measured here (`label`: `planted`, the planted artwork replicated; `training-copy`, any training
  image copied as closely, same rule and threshold; per prompt: rate >= 30%; per generation: that image), the words
  that drive the score, and whether it ranks the five kinds as the training-set audit does; plot `memorization_roc`.
Image grids (per trial, `files/grids/`): generations on top, each one's nearest training image below.
"""


def label(params: Mapping[str, Any], grid: Grid) -> str:
    """A trial's name: the axes off the base point and the seed, e.g. `guidance=7.5 seed=0`."""
    return grid.label(params)


def headline(outcome: TrialOutcome) -> str:
    """The console line when a trial lands: headline-rule rates of the five kinds and the object rates."""
    metrics = outcome.metrics
    parts = []
    for key, short in (("short-related", "short"), ("keywords", "kw"), ("cooccurring-without-keywords", "cooc")):
        value = metrics.get(f"rate/{HEADLINE_RULE}/{key}")
        if isinstance(value, float):
            parts.append(f"{short} {value:.0%}")
    for role in ("subject", "control"):
        value = metrics.get(f"object_rate/{role}")
        if isinstance(value, float):
            parts.append(f"object/{role} {value:.0%}")
    return ", ".join(parts)


def _interval(hits: int, n: int) -> tuple[float, float, float]:
    from radio.replication.stats import clopper_pearson

    if n <= 0:
        return float("nan"), float("nan"), float("nan")
    ci = clopper_pearson(int(hits), int(n))
    return ci.rate, ci.ci_low, ci.ci_high


def _rules(frame: pd.DataFrame) -> list[str]:
    return [c.split(":", 1)[1] for c in frame.columns if c.startswith("replicated:")]


def _axes(frame: pd.DataFrame) -> list[str]:
    return [c for c in TRIAL_COLUMNS if c in frame.columns]


def replication_by_kind(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (trial, kind, prompt, rule), counts summed over seed blocks."""
    axes = _axes(frame)
    records = []
    for keys, part in frame.groupby([*axes, "prompt_index", "kind", "prompt"], sort=True, dropna=False):
        values = dict(zip([*axes, "prompt_index", "kind", "prompt"], keys, strict=True))
        n = int(part["generated"].sum())
        for rule in _rules(frame):
            hits = int(part[f"replicated:{rule}"].sum())
            rate, low, high = _interval(hits, n)
            records.append(
                {
                    **{a: values[a] for a in axes},
                    "kind": values["kind"],
                    "prompt": values["prompt"],
                    "rule": rule,
                    "n": n,
                    "replicated": hits,
                    "rate": rate,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return pd.DataFrame.from_records(records)


def _analyses(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each distinct analysis folder's `analysis.json` (skipped when the folder is gone: a reused trial from an
    earlier cache root)."""
    out = {}
    for folder in sorted(set(frame.get("analysis_dir", pd.Series(dtype=str)).dropna())):
        path = Path(folder) / ANALYSIS_JSON
        if path.is_file():
            out[folder] = json.loads(path.read_text())
    return out


def object_rates(frame: pd.DataFrame, analyses: Mapping[str, dict[str, Any]]) -> pd.DataFrame:
    """The object's rate per trial and role (subject / control) against its training rate."""
    if "object_role" not in frame.columns:
        return pd.DataFrame(columns=["prompt_kind", "rate", "ci_low", "ci_high", "train_rate"])
    axes = _axes(frame)
    part = frame[frame["object_role"].notna()]
    records = []
    for keys, group in part.groupby([*axes, "object_role", "prompt", "analysis_dir"], sort=True, dropna=False):
        values = dict(zip([*axes, "object_role", "prompt", "analysis_dir"], keys, strict=True))
        n = int(group["generated"].sum())
        hits = int(group["objects"].sum())
        rate, low, high = _interval(hits, n)
        train = analyses.get(values["analysis_dir"], {}).get("training_objects", {})
        records.append(
            {
                **{a: values[a] for a in axes},
                "prompt_kind": values["object_role"],
                "prompt": values["prompt"],
                "n": n,
                "objects": hits,
                "rate": rate,
                "ci_low": low,
                "ci_high": high,
                "train_rate": train.get("rate", float("nan")),
                "train_ci_low": train.get("ci_low", float("nan")),
                "train_ci_high": train.get("ci_high", float("nan")),
                "train_n": train.get("n", 0),
            }
        )
    table = pd.DataFrame.from_records(records)
    if len(table):  # subject before control within a trial
        table = table.sort_values([*axes, "prompt_kind"], ascending=[True] * len(axes) + [False]).reset_index(drop=True)
    return table


def mcnemar_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Exact McNemar between every two prompts of a trial on the same seeds, per rule."""
    from radio.replication.stats import mcnemar_exact

    axes = _axes(frame)
    records = []
    for keys, trial in frame.groupby(axes, sort=True, dropna=False):
        values = dict(zip(axes, keys if isinstance(keys, tuple) else (keys,), strict=True))
        for rule in _rules(frame):
            flags = {}
            for kind, part in trial.sort_values("seed_start").groupby("kind", sort=False):
                flags[kind] = np.concatenate([bits_to_flags(b) for b in part[f"flags:{rule}"]])
            for a, b in itertools.combinations(sorted(flags), 2):
                if len(flags[a]) != len(flags[b]):
                    continue
                test = mcnemar_exact(flags[a], flags[b])
                records.append(
                    {
                        **values,
                        "rule": rule,
                        "kind_a": a,
                        "kind_b": b,
                        "n_pairs": test.n_pairs,
                        "n_ab": test.n_ab,
                        "n_ba": test.n_ba,
                        "rate_a": test.rate_a,
                        "rate_b": test.rate_b,
                        "pvalue": test.pvalue,
                        "log10_pvalue": test.log10_pvalue,
                    }
                )
    return pd.DataFrame.from_records(records)


def _analysis_tables(analyses: Mapping[str, dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """clusters, caption_similarity, word_pull and detector_agreement, one block per analysis folder."""
    clusters, similarity, pull, agree = [], [], [], []
    for folder, data in analyses.items():
        tag = {"analysis": Path(folder).name}
        for c in data["clusters"]:
            clusters.append(
                {
                    **tag,
                    "rank": c["rank"],
                    "size": c["size"],
                    "target": c["target"],
                    "top_words": ", ".join(f"{w} ({f:.2f})" for w, f in c["top_words"]),
                    **{f"threshold:{r}": t["value"] for r, t in c["thresholds"].items()},
                }
            )
        for p in data["prompts"]:
            similarity.append(
                {
                    **tag,
                    "kind": p["kind"],
                    "prompt": p["prompt"],
                    "similarity": p["nearest_caption_similarity"],
                    "nearest_caption": p["nearest_caption"],
                    "unseen_words": " ".join(p.get("unseen_words", [])),
                    "text_embedder": data["text_embedder"],
                }
            )
        pull.extend({**tag, **row} for row in data["word_pull"])
        agree.append({**tag, **data["detector_agreement"]})
    return {
        "clusters": pd.DataFrame(clusters),
        "caption_similarity": pd.DataFrame(similarity),
        "word_pull": pd.DataFrame(pull),
        "detector_agreement": pd.DataFrame(agree),
    }


def quality_gates(by_kind: pd.DataFrame, analyses: Mapping[str, dict[str, Any]]) -> pd.DataFrame:
    """The three gates, one row each (controls: one row per rule), with the worst value over trials."""
    rows = []
    controls = by_kind[by_kind["kind"].str.startswith("control-")] if len(by_kind) else by_kind
    for rule, part in controls.groupby("rule", sort=True) if len(controls) else []:
        worst = part.loc[part["rate"].idxmax()]
        rows.append(
            {
                "gate": f"controls <= 2% ({rule})",
                "value": float(worst["rate"]),
                "limit": CONTROL_MAX,
                "passed": bool(worst["rate"] <= CONTROL_MAX),
                "worst": str(worst["kind"]),
            }
        )
    if analyses:
        accuracies = [(Path(f).name, d["detector_agreement"]["accuracy"]) for f, d in analyses.items()]
        name, low = min(accuracies, key=lambda x: x[1])
        rows.append(
            {
                "gate": "detector agreement >= 80%",
                "value": float(low),
                "limit": AGREEMENT_MIN,
                "passed": bool(low >= AGREEMENT_MIN),
                "worst": name,
            }
        )
        ranks = [(Path(f).name, d["target"]["rank"]) for f, d in analyses.items()]
        name, rank = max(ranks, key=lambda x: x[1])
        rows.append(
            {
                "gate": "target cluster in top 3",
                "value": float(rank),
                "limit": float(TARGET_MAX_RANK),
                "passed": bool(rank <= TARGET_MAX_RANK),
                "worst": name,
            }
        )
    return pd.DataFrame.from_records(rows, columns=["gate", "value", "limit", "passed", "worst"])


# The paper's claims (issue 11, "what it must show"), checked on every trial under the headline rule: the keywords
# alone, or in an unrelated scene, rarely replicate; related captions and the co-occurring words without the
# keywords often do; the unnamed object comes back more often than its training rate's lower bound, and not
# without the subject. Findings, not quality gates: on a real model they may fail, and that is the result.
EXPECTED_KINDS = {
    "keywords": ("<=", 0.05),
    "unrelated-with-keywords": ("<=", 0.05),
    "short-related": (">=", 0.30),
    "long-related": (">=", 0.30),
    "cooccurring-without-keywords": (">=", 0.30),
}
OBJECT_CONTROL_MAX = 0.05


def expectations(by_kind: pd.DataFrame, objects: pd.DataFrame, rule: str = HEADLINE_RULE) -> pd.DataFrame:
    """Per trial, each claim of the paper under `rule`: the rate, its 95% interval, whether the point estimate
    meets the claim (`met`) and whether the whole interval does (`separated`)."""
    columns = ["claim", "rate", "ci_low", "ci_high", "limit", "met", "separated"]
    records = []
    axes = [a for a in TRIAL_COLUMNS if a in by_kind.columns]
    part = by_kind[(by_kind["rule"] == rule) & by_kind["kind"].isin(list(EXPECTED_KINDS))] if len(by_kind) else []
    for row in part.itertuples(index=False) if len(part) else []:
        op, limit = EXPECTED_KINDS[row.kind]
        low_side = op == "<="
        records.append(
            {
                **{a: getattr(row, a) for a in axes},
                "claim": f"{row.kind} {op} {limit:.0%}",
                "rate": row.rate,
                "ci_low": row.ci_low,
                "ci_high": row.ci_high,
                "limit": limit,
                "met": bool(row.rate <= limit if low_side else row.rate >= limit),
                "separated": bool(row.ci_high <= limit if low_side else row.ci_low >= limit),
            }
        )
    for row in objects.itertuples(index=False) if len(objects) else []:
        subject = row.prompt_kind == "subject"
        limit = float(row.train_ci_low) if subject else OBJECT_CONTROL_MAX
        records.append(
            {
                **{a: getattr(row, a) for a in axes if hasattr(row, a)},
                "claim": "object: subject > training rate's ci_low" if subject else f"object: control <= {limit:.0%}",
                "rate": row.rate,
                "ci_low": row.ci_low,
                "ci_high": row.ci_high,
                "limit": limit,
                "met": bool(row.rate > limit if subject else row.rate <= limit),
                "separated": bool(row.ci_low > limit if subject else row.ci_high <= limit),
            }
        )
    return pd.DataFrame.from_records(records, columns=[*axes, *columns] if records else columns)


def _rate_plot(by_kind: pd.DataFrame, axis: str, base: Mapping[str, Any], rule: str = HEADLINE_RULE) -> Any:
    """Replication rate against `axis` under `rule`, one line per kind, with Clopper–Pearson intervals.

    Only the trials whose other varied axes sit at the grid's base point are drawn (seeds pooled), so that a line
    changes `axis` alone: pooling, say, dedup none and near at 200 copies would draw a rate that no model has.
    """
    figure, axes = new_figure(7, 4.5)
    part = by_kind[by_kind["rule"] == rule]
    held = held_axes(part, base, axis)  # named in the title
    part = rows_at_base(part, base, axis)
    for kind, group in part.groupby("kind", sort=True):
        stats = group.groupby(axis, sort=True).agg(replicated=("replicated", "sum"), n=("n", "sum")).reset_index()
        cis = [_interval(h, n) for h, n in zip(stats["replicated"], stats["n"], strict=True)]
        rate = np.array([c[0] for c in cis])
        err = np.array(
            [[r - c[1] for r, c in zip(rate, cis, strict=True)], [c[2] - r for r, c in zip(rate, cis, strict=True)]]
        )
        axes.errorbar(
            stats[axis].astype(str) if axis == "dedup" else stats[axis],
            rate,
            yerr=err,
            marker="o",
            capsize=3,
            label=kind,
        )
    axes.set_xlabel(axis)
    if held:
        axes.set_title(", ".join(f"{k}={v}" for k, v in held.items()), fontsize="small")
    axes.set_ylabel(f"replication rate ({rule})")
    axes.set_ylim(-0.02, 1.02)
    axes.legend(fontsize="x-small")
    axes.grid(alpha=0.3)
    return figure


def _cell(rate: float, low: float, high: float) -> str:
    if math.isnan(rate):
        return ""
    return f"{100 * rate:.0f}% [{100 * low:.0f}-{100 * high:.0f}]"


def _display(by_kind: pd.DataFrame, objects: pd.DataFrame, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Short console versions: rules as columns of "rate [ci]" cells, one row per (trial, kind)."""
    out = {}
    varied = [a for a in _axes(frame) if frame[a].nunique() > 1]
    if len(by_kind):
        shown = by_kind.assign(
            cell=[_cell(r, lo, hi) for r, lo, hi in by_kind[["rate", "ci_low", "ci_high"]].to_numpy()]
        )
        wide = shown.pivot_table(index=[*varied, "kind"], columns="rule", values="cell", aggfunc="first")
        n = shown.groupby([*varied, "kind"])["n"].first()
        out["replication_by_kind"] = wide.assign(n=n).reset_index()
    if len(objects):
        table = objects.assign(
            rate=[_cell(r, lo, hi) for r, lo, hi in objects[["rate", "ci_low", "ci_high"]].to_numpy()],
            train_rate=[
                _cell(r, lo, hi) for r, lo, hi in objects[["train_rate", "train_ci_low", "train_ci_high"]].to_numpy()
            ],
        )
        out["object_rates"] = table[[*varied, "prompt_kind", "n", "rate", "train_rate"]]
    return out


def _display_claims(claims: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Console version of `expectations`: the varied axes, claim, "rate [ci]", met, separated."""
    if not len(claims):
        return claims
    varied = [a for a in _axes(frame) if frame[a].nunique() > 1 and a in claims.columns]
    cells = [_cell(r, lo, hi) for r, lo, hi in claims[["rate", "ci_low", "ci_high"]].to_numpy()]
    return claims.assign(rate=cells)[[*varied, "claim", "rate", "met", "separated"]]


def attribution_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per trial and word-kind prompt: the words that drive its data-free memorization score, largest first."""
    columns = ["kind", "prompt", "rank", "word", "attribution"]
    if "attribution" not in frame.columns:
        return pd.DataFrame(columns=columns)
    axes = _axes(frame)
    records = []
    for row in frame[frame["attribution"].notna()].itertuples(index=False):
        for rank, item in enumerate(str(row.attribution).split(";"), start=1):
            word, _, value = item.rpartition("=")
            records.append(
                {
                    **{a: getattr(row, a) for a in axes},
                    "kind": row.kind,
                    "prompt": row.prompt,
                    "rank": rank,
                    "word": word,
                    "attribution": float(value),
                }
            )
    return pd.DataFrame.from_records(records, columns=[*axes, *columns])


def _roc_plot(frame: pd.DataFrame, quality: pd.DataFrame, rule: str = HEADLINE_RULE) -> Any:
    """The data-free detectors' ROC curves per generation (all trials), one per (detector, ground truth)."""
    from radio.replication.memorization_eval import roc_points  # torch: only when the detector ran

    figure, axes = new_figure(5, 5)
    styles = {"planted": "-", "training-copy": "--"}  # a colour per detector, a line style per ground truth
    colours: dict[str, str] = {}
    for (detector, truth), (fpr, tpr) in roc_points(frame, rule).items():
        colour = colours.setdefault(detector, f"C{len(colours)}")
        auc = quality[
            (quality["level"] == "generation") & (quality["detector"] == detector) & (quality["label"] == truth)
        ]["auc"]
        shown = f" (AUC {auc.iloc[0]:.3f})" if len(auc) == 1 else ""
        axes.plot(fpr, tpr, color=colour, linestyle=styles.get(truth, ":"), label=f"{detector} vs {truth}{shown}")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set_xscale("symlog", linthresh=0.01)
    axes.set_xlim(0, 1)
    axes.set_xlabel("false-positive rate (generations not labelled)")
    axes.set_ylabel(f"true-positive rate (per generation, {rule})")
    axes.set_title("data-free memorization scores: planted artwork / any training image", fontsize="small")
    axes.legend(fontsize="x-small")
    axes.grid(alpha=0.3)
    return figure


def memorization_tables(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`memorization_scores` (per prompt), `memorization_quality` (AUC, TPR at 1% FPR), `token_attribution` and
    `memorization_findings` (does the score rank the five kinds as the training-set audit does), under the
    headline rule; empty when the sweep ran without the detector."""
    if "memorization_values" not in frame.columns:
        return {}
    from radio.replication.memorization_eval import kind_ranking, memorization_quality, memorization_scores_table

    axes = _axes(frame)
    scores = memorization_scores_table(frame, axes, HEADLINE_RULE)
    if not len(scores):
        return {}
    quality = memorization_quality(frame, scores, axes, HEADLINE_RULE)
    findings = pd.DataFrame({"finding": kind_ranking(scores, axes)})
    return {
        "memorization_scores": scores,
        "memorization_quality": quality,
        "token_attribution": attribution_table(frame),
        "memorization_findings": findings,
    }


def _display_memorization(quality: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Console version of `memorization_quality`: one row per trial (its varied axes), detector and ground truth
    (`label`), AUC at both levels, TPR at 1% FPR and the positives per level (an AUC without positives is blank)."""
    varied = [a for a in _axes(frame) if frame[a].nunique() > 1 and a in quality.columns]
    index = [*varied, "detector", *(["label"] if "label" in quality.columns else [])]
    wide = quality.pivot_table(
        index=index, columns="level", values=["auc", "tpr", "n_pos"], aggfunc="first", dropna=False, sort=False
    )
    wide.columns = [f"{metric} ({level})" for metric, level in wide.columns]
    return wide.reset_index()


def _display_scores(scores: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Console version of `memorization_scores`: the varied axes, prompt, kind, each detector's score, both rates."""
    varied = [a for a in _axes(frame) if frame[a].nunique() > 1 and a in scores.columns]
    shown = ["prompt", "kind", "score", "denoised_agreement", "agreement", "replicated_rate", "copied_rate"]
    return scores[[*varied, *(c for c in shown if c in scores.columns)]]


def _n_trials(frame: pd.DataFrame) -> int:
    axes = _axes(frame)
    return int(frame.groupby(axes, dropna=False).ngroups) if axes and len(frame) else int(len(frame) > 0)


def build_report(frame: pd.DataFrame, grid: Grid) -> Report:
    """Every table, plot, gate and CSV of the sweep."""
    analyses = _analyses(frame)
    by_kind = replication_by_kind(frame)
    objects = object_rates(frame, analyses)
    tables = {"replication_by_kind": by_kind, "object_rates": objects, **_analysis_tables(analyses)}
    tables["mcnemar"] = mcnemar_table(frame)
    gates = quality_gates(by_kind, analyses)
    tables["quality_gates"] = gates
    claims = expectations(by_kind, objects)
    tables["expectations"] = claims
    memorization = memorization_tables(frame)
    tables.update(memorization)
    figures = {}
    if memorization:
        figures["memorization_roc"] = _roc_plot(frame, memorization["memorization_quality"])
    for axis in ("duplicates", "guidance", "step", "dedup", "sampler_steps"):
        if axis in frame.columns and frame[axis].nunique() > 1:
            figures[f"replication_vs_{axis}"] = _rate_plot(by_kind, axis, grid.base)
    failed = gates[~gates["passed"]]["gate"].tolist() if len(gates) else []
    description = DESCRIPTION + (
        f"\n**Quality gates failed: {', '.join(failed)}.**\n" if failed else "\nAll quality gates passed.\n"
    )
    metrics = {"gates_failed": float(len(failed))}
    artifacts = {}
    for name in ("replication_by_kind", "object_rates"):
        buffer = io.StringIO()
        tables[name].to_csv(buffer, index=False)
        artifacts[f"{name}.csv"] = buffer.getvalue().encode()
    return Report(
        tables={k: v for k, v in tables.items() if len(v.columns)},
        figures=figures,
        console=[
            "replication_by_kind",
            "object_rates",
            "expectations",
            "quality_gates",
            # The per-prompt scores on the console for a one-trial sweep only (the default's 9 rows); with more
            # trials they would outgrow a short console, and stay in the MLflow table.
            *(["memorization_scores"] if memorization and _n_trials(frame) == 1 else []),
            *(["memorization_quality"] if memorization else []),
        ],
        display={
            **_display(by_kind, objects, frame),
            "expectations": _display_claims(claims, frame),
            "quality_gates": gates[["gate", "value", "passed"]],
            **(
                {
                    "memorization_scores": _display_scores(memorization["memorization_scores"], frame),
                    "memorization_quality": _display_memorization(memorization["memorization_quality"], frame),
                }
                if memorization
                else {}
            ),
        },
        captions={
            "replication_by_kind": "Rates are fractions; ci_low/ci_high: 95% Clopper-Pearson. Console: % [95% CI].",
            "object_rates": "The object's rate in generations vs in the subject's training images (train_rate).",
            "memorization_scores": "Per prompt: the data-free scores (mean over seeds), the planted artwork's "
            "replicated rate and the rate of generations copying any training image (copied_rate), same rule.",
            "memorization_quality": "Data-free scores (noise-difference: Wen et al.; denoised-agreement: the "
            "seeds' first-step clean estimates agree; seed-agreement: Carlini et al.) against two ground truths "
            "(label planted: the planted artwork replicated; training-copy: any training image copied as "
            "closely): per prompt (positive: rate >= 30%) and per generation (positive: "
            "that image); tpr at 1% FPR.",
        },
        artifacts=artifacts,
        metrics=metrics,
        description=description,
    )
