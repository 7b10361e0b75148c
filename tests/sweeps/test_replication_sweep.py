"""The replication sweep: presets, dry runs, bad input, the report's statistics, and the smoke preset end to end
(in a subprocess, as CI runs it), then rerun identically: nothing is retrained or regenerated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radio.replication.prompts import WORD_KINDS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "sweeps" / "replication.py"
KINDS = {
    "keywords",
    "short-related",
    "long-related",
    "unrelated-with-keywords",
    "cooccurring-without-keywords",
    "control-unrelated",
    "control-painter",
    "control-subject",
    "control-scene",
}
RULES = {"least-similar-member", "p5-member", "highest-non-member"}
BY_KIND_COLUMNS = ["kind", "prompt", "rule", "n", "replicated", "rate", "ci_low", "ci_high"]
OBJECT_COLUMNS = ["prompt_kind", "rate", "ci_low", "ci_high", "train_rate"]
SMOKE_SAMPLES = 6  # generate.samples in the smoke preset
SMOKE_TRIALS = 2  # guidance 1 and 3


def _run(args: list[str], env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("preset", ["tiny", "smoke", "dup"])
def test_dry_run_lists_trials_and_stages(preset, tmp_path):
    done = _run(["--preset", preset, "--dry-run", "--cache-root", str(tmp_path)])
    assert done.returncode == 0, done.stderr
    for stage in ("corpus", "dedup", "model", "analysis"):
        assert f"  {stage}: depends on" in done.stdout
    assert "evaluation only" in done.stdout


def test_dup_preset_shares_the_analysis_across_dedup_options(tmp_path):
    done = _run(["--preset", "dup", "dedup=none,near", "--dry-run", "--cache-root", str(tmp_path)])
    assert done.returncode == 0, done.stderr
    assert "model: depends on ['seed', 'model_config']; 7 distinct" in done.stdout  # 3 x 2 + exact
    assert "analysis: depends on ['analysis_config']; 3 distinct" in done.stdout  # one per duplication count


def test_sd14_preset_names_its_missing_paths():
    done = _run(["--preset", "sd14", "--dry-run"])
    assert done.returncode == 2
    assert "model.path" in done.stderr and "not found" in done.stderr


@pytest.mark.parametrize(
    ("override", "words"),
    [("step=7", ["step", "saved steps"]), ("dedup=fuzzy", ["dedup"]), ("nope=1", ["unknown axis"])],
)
def test_bad_overrides_fail_before_anything_starts(override, words, tmp_path):
    done = _run(["--preset", "smoke", override, "--dry-run", "--cache-root", str(tmp_path)])
    assert done.returncode == 2
    assert all(w in done.stderr for w in words), done.stderr


def test_report_tables_on_a_hand_made_frame():
    from sweeps.audits.replication.report import mcnemar_table, replication_by_kind

    rows = []
    for kind, bits in (("keywords", "000000"), ("short-related", "110111")):
        for start, block in ((0, bits[:3]), (3, bits[3:])):
            rows.append(
                {
                    "step": 1,
                    "guidance": 3.0,
                    "sampler_steps": 4,
                    "duplicates": 5,
                    "dedup": "none",
                    "seed": 0,
                    "prompt_index": 0 if kind == "keywords" else 1,
                    "kind": kind,
                    "prompt": kind,
                    "seed_start": start,
                    "generated": 3,
                    "replicated:p5-member": block.count("1"),
                    "flags:p5-member": block,
                }
            )
    table = replication_by_kind(pd.DataFrame(rows))
    assert list(table.columns[-8:]) == BY_KIND_COLUMNS
    short = table[table["kind"] == "short-related"].iloc[0]
    assert (short["n"], short["replicated"]) == (6, 5)
    assert short["rate"] == pytest.approx(5 / 6)
    assert short["ci_low"] <= short["rate"] <= short["ci_high"]
    tests = mcnemar_table(pd.DataFrame(rows))
    assert len(tests) == 1 and (tests.iloc[0]["n_ab"], tests.iloc[0]["n_ba"]) == (0, 5)
    assert tests.iloc[0]["pvalue"] == pytest.approx(2 * 0.5**5)  # exact two-sided McNemar


def _mlflow(workdir: Path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("replication-smoke")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "trial_id" not in r.data.tags]
    children = [r for r in runs if "trial_id" in r.data.tags]
    return client, parents, children


def _table(client, run_id: str, name: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, f"tables/{name}.json", tmp)
        data = json.loads(Path(path).read_text())
    return pd.DataFrame(data["data"], columns=data["columns"])


def _stage_manifests(cache: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in cache.glob("*/*/manifest.json")}


@pytest.mark.slow  # about 85 s on 2 idle cores; CI runs this sweep through SLURM (ops/local/slurm.sh)
@pytest.mark.timeout(900)
def test_smoke_preset_end_to_end_then_rerun_regenerates_nothing(tmp_path, ray_token_auth):
    env = {**os.environ, "RAY_TMPDIR": f"/tmp/rr{os.getpid()}", "PYTHONUNBUFFERED": "1"}
    args = [
        "--preset",
        "smoke",
        "--storage-path",
        str(tmp_path / "storage"),
        "--cache-root",
        str(tmp_path / "cache"),
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--num-cpus",
        "2",
    ]
    first = _run(args, env=env, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "replication_by_kind" in first.stdout and "object_rates" in first.stdout
    assert len(first.stdout.splitlines()) < 100  # a short console (91 lines cold with three detectors)

    client, parents, children = _mlflow(tmp_path)
    assert len(parents) == 1 and len(children) == SMOKE_TRIALS
    assert len({c.data.tags["trial_id"] for c in children}) == SMOKE_TRIALS  # every trial recorded once
    assert all(c.data.tags["trial_complete"] == "1" for c in children)
    parent = parents[0].info.run_id
    by_kind = _table(client, parent, "replication_by_kind")
    assert set(BY_KIND_COLUMNS) <= set(by_kind.columns)
    assert {"step", "guidance", "sampler_steps", "duplicates", "dedup"} <= set(by_kind.columns)
    assert set(by_kind["kind"]) == KINDS and set(by_kind["rule"]) == RULES
    assert len(by_kind) == SMOKE_TRIALS * len(KINDS) * len(RULES)
    assert (by_kind["n"] == SMOKE_SAMPLES).all()
    rates = by_kind[["rate", "ci_low", "ci_high"]].to_numpy()
    assert ((rates >= 0) & (rates <= 1)).all()
    assert (by_kind["ci_low"] <= by_kind["rate"] + 1e-12).all() and (
        by_kind["rate"] <= by_kind["ci_high"] + 1e-12
    ).all()
    objects = _table(client, parent, "object_rates")
    assert set(OBJECT_COLUMNS) <= set(objects.columns)
    assert sorted(objects["prompt_kind"]) == ["control", "control", "subject", "subject"]
    assert ((objects["ci_low"] <= objects["rate"]) & (objects["rate"] <= objects["ci_high"])).all()
    assert objects["train_rate"].between(0.1, 0.5).all()  # about 29% of the subject images carry the flag
    for name in ("clusters", "caption_similarity", "word_pull", "mcnemar", "detector_agreement", "quality_gates"):
        assert len(_table(client, parent, name)) > 0, name
    # the data-free memorization detector: a finite score per prompt, both AUC levels, words for the word kinds
    scores = _table(client, parent, "memorization_scores")
    assert len(scores) == SMOKE_TRIALS * len(KINDS) and np.isfinite(scores["score"]).all()
    assert (scores["n"] == SMOKE_SAMPLES).all()
    quality = _table(client, parent, "memorization_quality")
    assert sorted(set(quality["level"])) == ["generation", "prompt"]
    assert sorted(set(quality["detector"])) == ["denoised-agreement", "noise-difference", "seed-agreement"]
    assert sorted(set(quality["label"])) == ["planted", "training-copy"]
    assert len(quality) == 3 * 2 * 2 * SMOKE_TRIALS and np.isfinite(scores["agreement"]).all()
    assert scores["denoised_agreement"].between(-1, 1).all()
    assert (scores["copied_rate"] >= scores["replicated_rate"]).all()
    words = _table(client, parent, "token_attribution")
    assert set(words["kind"]) == set(WORD_KINDS) and (words["attribution"] >= 0).all()
    assert "plots/memorization_roc.png" in {f.path for f in client.list_artifacts(parent, "plots")}
    parent_files = {f.path for f in client.list_artifacts(parent)}
    assert {"replication_by_kind.csv", "object_rates.csv"} <= parent_files
    csv = pd.read_csv(client.download_artifacts(parent, "replication_by_kind.csv", str(tmp_path)))
    assert len(csv) == len(by_kind)
    grids = [f.path for f in client.list_artifacts(children[0].info.run_id, "files/grids")]
    assert len(grids) == len(KINDS) and all(g.endswith(".png") for g in grids)
    generated = sum(_table(client, c.info.run_id, "evaluations")["generated"].sum() for c in children)
    assert generated == SMOKE_TRIALS * len(KINDS) * SMOKE_SAMPLES

    chunks = sorted(p.name for p in (tmp_path / "mlartifacts").rglob("chunks/chunk-*.json"))
    manifests = _stage_manifests(tmp_path / "cache")
    assert len(manifests) == 4  # corpus, dedup, model, analysis: built once, shared by both trials
    second = _run(args, env=env, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"{SMOKE_TRIALS} already recorded" in second.stdout
    assert sorted(p.name for p in (tmp_path / "mlartifacts").rglob("chunks/chunk-*.json")) == chunks  # no generation
    assert _stage_manifests(tmp_path / "cache") == manifests  # nothing retrained or rebuilt
    _, parents_after, children_after = _mlflow(tmp_path)
    assert len(parents_after) == 1
    assert len(children_after) == SMOKE_TRIALS  # the finished trials were found again, not run twice
    assert np.isfinite(by_kind["rate"]).all()


def test_default_controls_and_unrelated_scene_use_words_the_model_saw(tmp_path):
    """A word the tiny model never saw encodes as <unk> (an empty prompt, which draws the most duplicated image):
    the default's controls and unrelated scene must be made of training words, none of them the keyword's."""
    from radio.replication.clustering import caption_words
    from radio.replication.synthetic import SyntheticCorpusConfig, build_synthetic_corpus
    from sweeps.audits.replication.config import load_preset

    config = load_preset("tiny")
    corpus = build_synthetic_corpus(tmp_path, SyntheticCorpusConfig(n_planted=20, n_artist_works=40), seed=0)
    captions = pd.read_parquet(corpus / "metadata.parquet")["caption"]
    vocabulary = set().union(*(caption_words(c) for c in captions))
    keyword_words = caption_words(config.analysis.prompt_keywords or config.analysis.keyword)
    prompts = {"unrelated": config.analysis.unrelated, **config.analysis.controls}
    prompts |= {"subject": config.analysis.subject_prompt, "scene": config.analysis.scene_prompt}
    for name, text in prompts.items():
        words = caption_words(text)
        assert words <= vocabulary, (name, sorted(words - vocabulary))
        assert not words & keyword_words, name


def test_stage_hashes_follow_the_resolved_defaults():
    """The corpus and model stages are keyed by their configs with defaults filled in: writing a default out
    changes nothing, changing a value (or a default in the code) makes a new stage."""
    from dataclasses import replace

    from sweeps.audits.replication.config import load_preset
    from sweeps.audits.replication.sweep import _resolved_corpus, _resolved_model

    base = load_preset("tiny")
    same = replace(base, corpus=replace(base.corpus, synthetic={"n_artist_works": 600}))
    other = replace(base, corpus=replace(base.corpus, synthetic={"n_artist_works": 399}))
    assert _resolved_corpus(base) == _resolved_corpus(same) != _resolved_corpus(other)
    assert "synthetic_version" in _resolved_corpus(base)
    deeper = replace(base, model=replace(base.model, t2i={**base.model.t2i, "caption_dropout": 0.1}))
    changed = replace(base, model=replace(base.model, t2i={**base.model.t2i, "caption_dropout": 0.2}))
    assert _resolved_model(base) == _resolved_model(deeper) != _resolved_model(changed)


def test_expectations_met_and_separated_on_hand_made_counts():
    """The paper's claims on known counts: 1/50 keywords (met, interval above 5%: not separated), 0/50 unrelated
    (met; its interval still reaches 7%), 20/50 short-related (met, interval reaches below 30%), 10/50 long (not
    met); object 30/100 against a training interval starting at 0.25 (met), control 3/100 (met, interval above
    5%)."""
    from sweeps.audits.replication.report import HEADLINE_RULE, expectations, replication_by_kind

    counts = {"keywords": 1, "unrelated-with-keywords": 0, "short-related": 20, "long-related": 10}
    rows = []
    for index, (kind, hits) in enumerate(counts.items()):
        row = {"step": 1, "seed": 0, "prompt_index": index, "kind": kind, "prompt": kind, "generated": 50}
        rows.append({**row, f"replicated:{HEADLINE_RULE}": hits, "replicated:p5-member": 50})
    by_kind = replication_by_kind(pd.DataFrame(rows))
    objects = pd.DataFrame(
        [
            {"step": 1, "seed": 0, "prompt_kind": k, "rate": r, "ci_low": lo, "ci_high": hi, "train_ci_low": 0.25}
            for k, r, lo, hi in (("subject", 0.30, 0.21, 0.40), ("control", 0.03, 0.006, 0.085))
        ]
    )
    table = expectations(by_kind, objects).set_index("claim")
    assert len(table) == 6  # the other rule's rows are not claims
    verdicts = {claim: (row["met"], row["separated"]) for claim, row in table.iterrows()}
    assert verdicts["keywords <= 5%"] == (True, False)
    assert verdicts["unrelated-with-keywords <= 5%"] == (True, False)  # 0/50: the interval reaches 7.1%
    assert table.loc["unrelated-with-keywords <= 5%", "ci_high"] == pytest.approx(1 - 0.025 ** (1 / 50))
    assert verdicts["short-related >= 30%"] == (True, False)
    assert verdicts["long-related >= 30%"] == (False, False)
    assert verdicts["object: subject > training rate's ci_low"] == (True, False)
    assert verdicts["object: control <= 5%"] == (True, False)
    assert table.loc["short-related >= 30%", "rate"] == pytest.approx(0.4)


def test_rate_plot_holds_the_other_axes_at_the_base_point():
    # 200 copies: dedup none replicates 36/40, near 0/40; pooled they would draw 45%, a rate no model has.
    from sweeps.audits.replication.report import HEADLINE_RULE, _rate_plot

    rows = [
        (25, "none", 0),
        (100, "none", 5),
        (200, "none", 36),
        (200, "near", 0),
        (200, "exact", 36),
    ]
    by_kind = pd.DataFrame(
        [
            {"duplicates": d, "dedup": m, "kind": "short-related", "rule": HEADLINE_RULE, "replicated": r, "n": 40}
            for d, m, r in rows
        ]
    )
    figure = _rate_plot(by_kind, "duplicates", {"duplicates": 200, "dedup": "none"})
    line = figure.axes[0].lines[0]
    assert list(line.get_xdata()) == [25, 100, 200]
    assert np.allclose(line.get_ydata(), [0.0, 5 / 40, 36 / 40])
    assert figure.axes[0].get_title() == "dedup=none"
    by_dedup = _rate_plot(by_kind, "dedup", {"duplicates": 200, "dedup": "none"}).axes[0].lines[0]
    assert list(by_dedup.get_xdata()) == ["exact", "near", "none"]
    assert np.allclose(by_dedup.get_ydata(), [36 / 40, 0.0, 36 / 40])
