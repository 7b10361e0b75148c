"""A generic sweep engine on Ray Tune: grids, shared stages, trials, evaluation actors, recording, resume.

It knows no audit: a sweep script (`sweeps/ablation.py`, `sweeps/replication.py`) declares a `Sweep`:

- a `Grid`: a base point plus axes varied one at a time around it (or their product) and seeds;
  `Grid.with_overrides("rho=0,0.5 lr=1e-4")` changes axes from the command line, errors naming the axis;
- `Stage`s: shared work built once per distinct dependency in the stage store, handed to trials and
  evaluations by stage name;
- `train(ctx)`: the trial, run by Ray Tune (optionally with a Ray Train `TorchTrainer` from
  `ctx.torch_trainer`), or no training at all (an evaluation-only sweep whose points name a model);
- an `Evaluation`: tasks per trial, split into chunks over a pool of actors that keep their loaded model;
  each finished chunk is recorded, so a rerun redoes only unfinished chunks;
- a `report(frame, grid) -> Report`: tables, figures, files, summary metrics and a description.

Example (a sweep script is a declaration plus `main`):

    grid = Grid(base={"lr": 1e-3, "size": "s"}, vary={"lr": [1e-3, 1e-4]}, seeds=(0, 1))
    data = Stage("data", build=make_data, depends_on=("size",))
    evaluation = Evaluation(load=load_model, tasks=lambda o: [{"prompt": p} for p in PROMPTS], run=score,
                            actors=2, chunk_size=50, summarize=lambda rows: {"rate": mean(rows)})
    sweep = Sweep("toy", grid, train=train, stages=[data], evaluation=evaluation, report=make_report)
    sys.exit(main(lambda args: sweep))

Importing this package loads neither torch nor any audit's code; Ray, MLflow and pandas load when used.
"""

from stagestore import StageOutput, config_hash, find_complete, run_stage
from sweeps.engine.callbacks import ResumeSource, SweepCallback, SweepStart
from sweeps.engine.cli import add_arguments, apply_args, main, options_from_args
from sweeps.engine.errors import ConfigError, SweepFailedError
from sweeps.engine.evaluation import ActorPool, Chunk, ChunkResult, EvalContext, Evaluation, EvaluationWorker
from sweeps.engine.grid import Grid, GridSection, Trial, parse_overrides, trial_id_of
from sweeps.engine.outcomes import Artifact, Report, SweepResult, TrialOutcome, results_frame
from sweeps.engine.ray_session import check_nodes, init_ray
from sweeps.engine.recording import MLflowRecorder
from sweeps.engine.resources import Resources
from sweeps.engine.runner import describe, run
from sweeps.engine.secrets import SecretGuard, SecretLeakError
from sweeps.engine.stages import Stage, StagePlan, StageSummary
from sweeps.engine.sweep import RunOptions, Sweep
from sweeps.engine.tracking import Tracker
from sweeps.engine.trial import CHECKPOINT_KEY, TrialContext

__all__ = [
    "CHECKPOINT_KEY",
    "ActorPool",
    "Artifact",
    "Chunk",
    "ChunkResult",
    "ConfigError",
    "EvalContext",
    "Evaluation",
    "EvaluationWorker",
    "Grid",
    "GridSection",
    "MLflowRecorder",
    "Report",
    "Resources",
    "ResumeSource",
    "RunOptions",
    "SecretGuard",
    "SecretLeakError",
    "Stage",
    "StageOutput",
    "StagePlan",
    "StageSummary",
    "Sweep",
    "SweepCallback",
    "SweepFailedError",
    "SweepResult",
    "SweepStart",
    "Tracker",
    "Trial",
    "TrialContext",
    "TrialOutcome",
    "add_arguments",
    "apply_args",
    "check_nodes",
    "config_hash",
    "describe",
    "find_complete",
    "init_ray",
    "main",
    "options_from_args",
    "parse_overrides",
    "results_frame",
    "run",
    "run_stage",
    "trial_id_of",
]
