"""The replication audit sweep: does a text-to-image model reproduce training images when a prompt holds certain
words, and does it draw an object its training captions never named? (Naseh, Roh, Houmansadr, arXiv 2312.03692)

    python sweeps/replication.py                        # embedded default (preset `tiny`): local Ray, ./mlflow.db
    python sweeps/replication.py --preset smoke         # CI: tiny sizes, checks the plumbing
    python sweeps/replication.py --preset dup           # duplication count x deduplication (training-time axes)
    python sweeps/replication.py --preset sd14          # a local Stable Diffusion folder and LAION metadata, GPUs
    python sweeps/replication.py guidance=1,3,7.5       # override any axis; --cartesian for the full product
    python sweeps/replication.py --dry-run              # trials, shared stages and resources; starts nothing

Stages, each built once per distinct dependency and cached by hash: `corpus` (the synthetic corpus: duplication
count and seed), `dedup` (the training rows kept), `model` (the tiny model trained in one Ray Train worker, with
checkpoints at several steps), `analysis` (filter, embed, cluster, thresholds, prompts, word pull, detector
validation). Trials are evaluation-only points over checkpoint `step`, `guidance` and `sampler_steps` (and the
training-time axes `duplicates` and `dedup`, which select stage instances); evaluation generates (prompt, seed
block) chunks over actors that keep their loaded model. Grid and stages are declared here; the steps are in
`steps.py` (the analysis itself is the library's `radio.replication.audit`), the tables in `report.py`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from radio.cache import config_hash
from radio.config import ConfigError
from radio.replication.audit import ANALYSIS_VERSION
from radio.replication.memorization_eval import DETECTORS_VERSION
from sweeps.audits.replication.config import DEDUP_MODES, ReplicationConfig, load_preset
from sweeps.audits.replication.report import build_report, headline, label
from sweeps.audits.replication.steps import Steps, summarize
from sweeps.engine import Evaluation, Grid, Resources, Stage, Sweep


def _grid(config: ReplicationConfig) -> Grid:
    steps = sorted(config.model.saved_steps())

    def has_checkpoint(step: int) -> bool:
        if step not in steps:
            raise ValueError(f"no checkpoint at this step; saved steps: {steps} (model.checkpoint_steps)")
        return True

    checks = {
        "step": has_checkpoint,
        "guidance": lambda v: v >= 0,
        "sampler_steps": lambda v: v >= 1,
        "duplicates": lambda v: v >= 1 if config.corpus.source == "synthetic" else v == 0,
        "dedup": lambda v: v in DEDUP_MODES,
    }
    return config.grid.to_grid(checks)


def _resources(spec: dict[str, float]) -> Resources:
    """Engine resources from a preset's mapping (YAML numbers are read as floats; `workers` is a count)."""
    return Resources(**{k: int(v) if k == "workers" else v for k, v in spec.items()})


def _check_paths(config: ReplicationConfig) -> None:
    """A model trained elsewhere: its folder and the metadata table must exist (errors name the preset field)."""
    for field, value in (("model.path", config.model.path), ("corpus.metadata", config.corpus.metadata)):
        if value and not Path(value).expanduser().exists():
            raise ConfigError(f"{field}: {value} not found (set it in the preset to a local folder or file)")
    for field, value in (
        ("analysis.prompts_file", config.analysis.prompts_file),
        ("analysis.tokenizer", config.analysis.tokenizer),
    ):
        if value and not Path(value).expanduser().exists():
            raise ConfigError(f"{field}: {value} not found")


def _resolved_corpus(config: ReplicationConfig) -> dict[str, Any]:
    """The corpus section with the synthetic corpus's defaults filled in (and the drawing code's version), so that
    a change of a default or of the drawing makes a new corpus stage instead of reusing a stale cached one."""
    public = config.public_dict()["corpus"]
    if config.corpus.source != "synthetic":
        return public
    from dataclasses import asdict

    from radio.replication.synthetic import SYNTHETIC_VERSION, SyntheticCorpusConfig

    resolved = asdict(SyntheticCorpusConfig(**config.corpus.synthetic))
    resolved.pop("n_planted")  # the `duplicates` axis
    return {**public, "synthetic": resolved, "synthetic_version": SYNTHETIC_VERSION}


def _resolved_model(config: ReplicationConfig) -> dict[str, Any]:
    """The model section with the tiny model's defaults filled in (same reason as `_resolved_corpus`)."""
    public = config.public_dict()["model"]
    if config.model.kind != "tiny":
        return public
    from radio.replication.t2i import TinyT2IConfig

    return {**public, "t2i": TinyT2IConfig.from_dict(dict(config.model.t2i)).to_dict()}


def build_sweep(args: argparse.Namespace) -> Sweep:
    """Declare the sweep: grid, shared stages, evaluation actors and tables."""
    config = load_preset(args.preset)
    _check_paths(config)
    steps = Steps(config)
    public = config.public_dict()
    # One hash per concern: a stage depends on the sections that change its output, every trial id on all.
    constants = {
        "corpus_config": config_hash(_resolved_corpus(config)),
        "dedup_config": config_hash(public["dedup"]),
        "model_config": config_hash({"model": _resolved_model(config)}),
        # The analysis code's version too: a new reference set (and the evaluation fields read from it) makes a
        # new analysis stage and new trial ids instead of reusing cached ones built by the older code.
        "analysis_config": config_hash({**public["analysis"], "analysis_version": ANALYSIS_VERSION}),
        "generate_config": config_hash({k: v for k, v in public["generate"].items() if k != "device"}),
        # Likewise the detectors' version: rows recorded before a detector existed lack its fields.
        "memorization_config": config_hash({**public["memorization"], "detectors_version": DETECTORS_VERSION}),
    }
    res = config.resources
    stages = []
    if config.corpus.source == "synthetic":
        stages += [
            Stage(
                "corpus",
                steps.build_corpus,
                depends_on=("duplicates", "seed", "corpus_config"),
                resources=_resources(res.corpus),
            ),
            Stage(
                "dedup",
                steps.build_dedup,
                depends_on=("dedup", "dedup_config"),
                needs=("corpus",),
                resources=_resources(res.corpus),
            ),
            Stage(
                "model",
                steps.build_model,
                depends_on=("seed", "model_config"),
                needs=("corpus", "dedup"),
                resources=_resources(res.model),
            ),
            Stage(
                "analysis",
                steps.build_analysis,
                depends_on=("analysis_config",),
                needs=("corpus",),
                resources=_resources(res.analysis),
            ),
        ]
    else:
        stages.append(
            Stage(
                "analysis",
                steps.build_analysis,
                depends_on=("analysis_config", "corpus_config"),
                resources=_resources(res.analysis),
            )
        )
    evaluation = Evaluation(
        load=steps.load,
        tasks=steps.tasks,
        run=steps.run,
        actors=res.actors,
        resources=_resources(res.actor),
        chunk_size=1,  # a task is already a (prompt, seed block): one recorded chunk each
        summarize=summarize,
        # Trials that differ only in guidance or sampler steps share a loaded checkpoint.
        load_key=lambda ctx: (ctx.checkpoint, str(ctx.stages.get("analysis"))),
    )
    return Sweep(
        name=config.name,
        grid=_grid(config),
        model=steps.model_path,
        stages=stages,
        evaluation=evaluation,
        report=build_report,
        constants=constants,
        label=label,
        headline=headline,
    )


def parser() -> argparse.ArgumentParser:
    """The sweep's own options; the engine adds overrides, --dry-run, --tracking-uri and the Ray options."""
    out = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("--preset", default="tiny", help="tiny (default), smoke, dup, sd14, or a path to a YAML file")
    return out
