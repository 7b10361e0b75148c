"""The `sd14` code path without weights (issue 11 item 5): a random tiny `StableDiffusionPipeline` folder, a
random CLIP folder, an SSCD-like TorchScript file and a small LAION-style Parquet table with its images, under a
preset derived from `replication-sd14.yaml`.

The fast test runs that path's steps in this process (analysis, tasks, loading the pipeline by path, batched and
seeded generation, scoring, the report's tables); the slow one runs the whole sweep script on it (Ray, actors,
MLflow) as a user would.
"""

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
from replication_realpath import BLOCK, SAMPLES, build_all, derive_sd14_preset

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "sweeps" / "replication.py"
SD_KINDS = {
    "keywords",
    "short-related",
    "long-related",
    "unrelated-with-keywords",
    "cooccurring-without-keywords",
    "control-unrelated",
    "control-subject",
    "control-scene",
}


@pytest.fixture(scope="module")
def realpath(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sd14")
    paths = build_all(folder)
    paths["preset"] = derive_sd14_preset(folder / "replication-sd14-random.yaml", paths)
    return paths


def test_derived_preset_keeps_the_real_settings(realpath):
    from sweeps.audits.replication.config import load_preset

    real = load_preset("sd14")
    derived = load_preset(str(realpath["preset"]))
    assert derived.model.kind == real.model.kind == "sd"
    assert derived.corpus.source == "table"
    for field in ("keyword", "target", "embedder", "detector", "text_embedder", "drop_largest", "pull_words"):
        assert getattr(derived.analysis, field) == getattr(real.analysis, field), field
    assert derived.grid.vary == real.grid.vary


def test_sd14_steps_in_process(realpath, tmp_path):
    """Analysis on the table, then every task of one trial: generate through the real pipeline class loaded by
    path, score under every rule, detect, and build the report's tables from the rows."""
    from radio.replication.audit import ANALYSIS_JSON
    from sweeps.audits.replication.report import build_report
    from sweeps.audits.replication.steps import Steps
    from sweeps.audits.replication.sweep import build_sweep, parser
    from sweeps.engine import EvalContext, TrialOutcome

    sweep = build_sweep(parser().parse_args(["--preset", str(realpath["preset"])]))
    steps = sweep.evaluation.load.__self__
    assert isinstance(steps, Steps)
    analysis_dir = tmp_path / "analysis"
    analysis_dir.mkdir()
    summary = steps.build_analysis(analysis_dir, {"seed": 0}, {})
    analysis = json.loads((analysis_dir / ANALYSIS_JSON).read_text())
    assert summary["target_rank"] >= 1
    assert analysis["n_filtered"] == 24 + 16 + 8 + 10  # every "van gogh" row (word boundary, any case)
    target = next(c for c in analysis["clusters"] if c["target"])
    assert target["size"] == 16  # the Almond Blossom copies, after the catch-all Starry Night cluster was dropped
    assert "almond" in [w for w, _ in target["top_words"]]
    assert {p["kind"] for p in analysis["prompts"]} == SD_KINDS
    assert analysis["training_objects"]["source"].startswith("detector clip-zero-shot")

    params = {**sweep.grid.base, "seed": 0}
    model = steps.model_path(params, {})
    assert model == str(realpath["pipeline"])
    outcome = TrialOutcome(trial_id="t0", params=params, checkpoint_path=model, stages={"analysis": str(analysis_dir)})
    tasks = steps.tasks(outcome)
    assert len(tasks) == len(SD_KINDS) * SAMPLES // BLOCK
    # Trials that differ only in sampler settings share a loaded model: the settings travel with each task.
    assert all((t["guidance"], t["sampler_steps"]) == (7.5, params["sampler_steps"]) for t in tasks)
    loaded = steps.load(EvalContext("t0", model, params, {"analysis": analysis_dir}))
    assert type(loaded["generator"].pipeline).__name__ == "StableDiffusionPipeline"
    rows = [{**params, **task, **steps.run(loaded, task)} for task in tasks]
    assert all(r["generated"] == BLOCK for r in rows)
    assert all(set(r) >= {"replicated:least-similar-member", "flags:p5-member"} for r in rows)
    # The second ground truth: every generation's nearest training image, over the whole table (its reference).
    assert np.load(analysis_dir / "arrays.npz")["reference_rows"].tolist() == list(range(analysis["n_corpus"]))
    for r in rows:
        nearest = [float(v) for v in r["nearest_values"].split(";")]
        assert len(nearest) == len(r["nearest_rows"].split(";")) == BLOCK
        for rule in ("least-similar-member", "p5-member", "highest-non-member"):
            copies = r[f"copy_flags:{rule}"]
            assert len(copies) == BLOCK and r[f"copied:{rule}"] == copies.count("1")
            # the planted cluster's members are training images too: a replication is a copy
            assert all(c == "1" for c, f in zip(copies, r[f"flags:{rule}"], strict=True) if f == "1")
    # Seeding: a block regenerated alone equals its twin in a batch of the whole prompt.
    first = tasks[0]
    seeds = list(range(first["seed_start"], first["seed_start"] + SAMPLES))
    batch = loaded["generator"].generate(
        [first["prompt"]] * SAMPLES, seeds, guidance_scale=7.5, num_inference_steps=4, batch_size=SAMPLES
    )
    alone = loaded["generator"].generate(
        [first["prompt"]] * BLOCK, seeds[:BLOCK], guidance_scale=7.5, num_inference_steps=4, batch_size=1
    )
    np.testing.assert_array_equal(batch[:BLOCK], alone)

    for row in rows:  # the engine records Artifact values as files and keeps their names
        if "grid" in row:
            row["grid"] = row["grid"].name
    frame = pd.DataFrame(rows).assign(trial_id="t0")
    report = build_report(frame, sweep.grid)
    tables = dict(report.tables)
    assert {"memorization_scores", "memorization_quality"} <= set(report.console)  # one trial: both on the console
    assert "copied_rate" in tables["memorization_scores"].columns
    by_kind = tables["replication_by_kind"]
    assert set(by_kind["kind"]) == SD_KINDS and (by_kind["n"] == SAMPLES).all()
    objects = tables["object_rates"]
    assert sorted(objects["prompt_kind"]) == ["control", "subject"]
    assert np.isfinite(objects["train_rate"]).all()
    assert len(tables["word_pull"]) > 0 and len(tables["caption_similarity"]) == len(SD_KINDS)


def _mlflow_tables(db: Path, experiment_name: str) -> tuple[list, dict[str, pd.DataFrame]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "trial_id" not in r.data.tags).info.run_id
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("replication_by_kind", "object_rates", "clusters", "word_pull", "quality_gates"):
            data = json.loads(Path(client.download_artifacts(parent, f"tables/{name}.json", tmp)).read_text())
            tables[name] = pd.DataFrame(data["data"], columns=data["columns"])
    return runs, tables


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sd14_preset_end_to_end_on_a_random_pipeline(realpath, tmp_path, ray_token_auth):
    """The sweep script with the derived preset: two guidance trials, evaluation chunks over two actors that
    load the pipeline folder, tables in MLflow."""
    env = {**os.environ, "RAY_TMPDIR": f"/tmp/rsd{os.getpid()}", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    args = [
        "--preset",
        str(realpath["preset"]),
        "--storage-path",
        str(tmp_path / "storage"),
        "--cache-root",
        str(tmp_path / "cache"),
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--num-cpus",
        "2",
    ]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=540
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "replication_by_kind" in done.stdout
    runs, tables = _mlflow_tables(tmp_path / "mlflow.db", "replication-sd14-random")
    assert len([r for r in runs if "trial_id" in r.data.tags]) == 2  # guidance 3 and 7.5
    by_kind = tables["replication_by_kind"]
    assert set(by_kind["kind"]) == SD_KINDS and (by_kind["n"] == SAMPLES).all()
    assert sorted(set(by_kind["guidance"])) == [3.0, 7.5]
    assert (by_kind["step"] == 0).all() and (by_kind["dedup"] == "none").all()
    assert len(tables["object_rates"]) == 4
    target = tables["clusters"][tables["clusters"]["target"].astype(bool)]
    assert len(target) == 1 and int(target["size"].iloc[0]) == 16
    assert len(list((tmp_path / "cache").glob("analysis/*/manifest.json"))) == 1  # no corpus / model stages
