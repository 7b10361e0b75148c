"""The radioactivity ablation sweep: does fine-tuning on watermarked text make model B radioactive?

    python sweeps/ablation.py                      # embedded default (preset `tiny`): local Ray, ./mlflow.db
    python sweeps/ablation.py --preset paper       # the paper's grid, local model folders, on a cluster
    python sweeps/ablation.py rho=0,0.1,1 k=1,2    # override any axis; --cartesian for the full product
    python sweeps/ablation.py rho=1 paraphrase=0,0.5,1   # Bob rewrites his training answers with B first
    python sweeps/ablation.py --dry-run            # trials, shared stages and resources; starts nothing

The key comes from --key-file or RADIO_WATERMARK_KEY; with neither, a random key is created once in
~/.config/radio/watermark.key (mode 0600), outside the tracking store. Only its fingerprint is recorded.
Grid, stages and tables are declared here; the generic machinery (Ray Tune, actors, MLflow, resume) is the
package `sweeps/engine/`, the radio steps `steps.py`, the tables `report.py` (this package).
"""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

from radio.cache import config_hash
from radio.keys import KEY_ENV_VAR, check_key, ensure_key_file, key_fingerprint, load_key
from radio.train.methods import METHODS
from radio.watermark import SCHEMES
from sweeps.audits.radioactivity.config import AblationConfig, load_preset
from sweeps.audits.radioactivity.report import build_report, headline, label, summarize
from sweeps.audits.radioactivity.reproduction import describe_setup
from sweeps.audits.radioactivity.steps import BASE_MODEL_EPOCHS, Steps
from sweeps.engine import Evaluation, Grid, Resources, Stage, Sweep

# The preset sections that change a trial's result: with the key fingerprint, they are part of every trial's id.
# Not the grid (its points are the trial's params), the name or the resources: extending a sweep, renaming it or
# giving it more actors finds the finished trials again.
RESULT_SECTIONS = ("watermark", "prepare", "generate", "mix", "finetune", "purify", "detect", "models")

DEFAULT_KEY_FILE = Path("~/.config/radio/watermark.key")


def _key_file(args: argparse.Namespace) -> str | None:
    """The key file to use (None: the environment variable); the embedded default creates one when needed, except
    for a dry run, which writes nothing."""
    if args.key_file is not None:
        return str(Path(args.key_file).expanduser().resolve())
    if os.environ.get(KEY_ENV_VAR):
        return None
    default = DEFAULT_KEY_FILE.expanduser()
    if args.dry_run and not default.exists():
        return str(default.resolve())
    return str(ensure_key_file(default).resolve())


def _grid(config: AblationConfig) -> Grid:
    checks = {
        "rho": lambda v: 0.0 <= v <= 1.0,
        "lr": lambda v: v > 0,
        "epochs": lambda v: v >= 0,
        "k": lambda v: v >= 0,
        "scheme": lambda v: v in SCHEMES,
        "method": lambda v: v in METHODS,
        "purify_steps": lambda v: v >= 0,
        "paraphrase": lambda v: 0.0 <= v <= 1.0,
    }
    if config.models:
        checks["size"] = lambda v: v in config.models
    return config.grid.to_grid(checks)


def build_sweep(args: argparse.Namespace) -> Sweep:
    """Declare the sweep: grid, shared stages, trial, detection actors and tables."""
    config = load_preset(args.preset)
    key_file = _key_file(args)
    if args.dry_run and args.key_file is None and key_file is not None and not Path(key_file).exists():
        key: int | bytes = b"(no key yet: a dry run creates none)"  # stages show as "to build"
    else:
        key = load_key(key_file)
    steps = Steps(config, key_file)
    res = config.resources
    stage_resources = Resources(**res.stage)
    fingerprint = key_fingerprint(key)
    public = config.public_dict()
    constants = {
        "key_fingerprint": fingerprint,
        "config": config_hash({name: public.get(name) for name in RESULT_SECTIONS}),  # stages rebuild on change
    }
    stages = [
        Stage("alice", steps.build_alice, depends_on=("config",), resources=stage_resources),
        Stage("bob", steps.build_bob, depends_on=("size", "config"), needs=("alice",), resources=stage_resources),
        Stage(
            "data",
            steps.build_data,
            depends_on=("scheme", "k", "key_fingerprint", "config"),
            needs=("alice",),
            resources=stage_resources,
        ),
        Stage("mix", steps.build_mix, depends_on=("rho", "config"), needs=("data",), resources=stage_resources),
        # Bob's training split: the mix's own, or rewritten by his base model (axis paraphrase > 0); the base-model
        # control trains on nothing, so it needs none. rho and size reach it through the mix's and bob's hashes.
        Stage(
            "rewrite",
            steps.build_rewrite,
            depends_on=("paraphrase", "config"),
            needs=("mix", "bob"),
            resources=stage_resources,
            needed=lambda params: params["epochs"] != BASE_MODEL_EPOCHS,
        ),
    ]
    evaluation = Evaluation(
        load=lambda ctx: steps.load_actor(ctx.checkpoint, ctx.params),
        tasks=steps.tasks,
        run=steps.run_task,
        actors=res.detect_actors,
        resources=Resources(**res.detect),
        summarize=summarize,
    )
    return Sweep(
        name=config.name,
        grid=_grid(config),
        train=steps.train,
        stages=stages,
        evaluation=evaluation,
        report=functools.partial(build_report, setup=describe_setup(config)),
        resources=Resources(**res.trial),
        constants=constants,
        secrets=[key],
        secret_files=[key_file] if key_file else [],
        manifest={"key_fingerprint": fingerprint},
        label=label,
        headline=headline,
        preflight=functools.partial(check_key, key_file, fingerprint),
    )


def parser() -> argparse.ArgumentParser:
    """The sweep's own options; the engine adds overrides, --dry-run, --tracking-uri and the Ray options."""
    out = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("--preset", default="tiny", help="tiny (default), paper, or a path to a preset YAML file")
    out.add_argument("--key-file", default=None, help=f"file holding the watermark key (else ${KEY_ENV_VAR})")
    return out
