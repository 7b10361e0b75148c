"""What a sweep declares (`Sweep`) and how and where it runs (`RunOptions`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagestore import config_hash
from sweeps.engine.evaluation import Evaluation
from sweeps.engine.grid import Grid, Trial
from sweeps.engine.resources import Resources
from sweeps.engine.stages import Stage
from sweeps.engine.trial import TrialContext

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from sweeps.engine.callbacks import SweepCallback
    from sweeps.engine.outcomes import Report, TrialOutcome


@dataclass(frozen=True)
class Sweep:
    """Everything a sweep declares.

    - `train(ctx)` runs in a Ray Tune trial and returns its results (with `checkpoint_path` for evaluation);
      `None` makes an evaluation-only sweep, where `model(params, stages)` names the model a point evaluates.
    - `constants` are the values besides the params that change a trial's result (a data hash, a key
      fingerprint): part of every trial's id, recorded on the parent run, usable as stage dependencies. Never
      secrets, never paths or resources that do not change results.
    - `secrets` are refused by the tracking guard; `secret_files` (e.g. a key file) are never shipped to a
      cluster's workers with the project's code; `manifest` is added to every stage manifest.
    - `label(params, grid)` names a trial (default: the grid's label, e.g. `rho=0.25 k=1 seed=0`); `headline(outcome)`
      is the line the console shows when the trial lands; `report(frame, grid)` builds the tables.
    - `preflight()` runs once on every node of the Ray cluster before anything starts (e.g. "is the key file
      readable here"); it raises with a clear message when the node cannot run the sweep.
    """

    name: str
    grid: Grid
    train: Callable[[TrialContext], Mapping[str, Any] | None] | None = None
    model: Callable[[Mapping[str, Any], Mapping[str, Path]], str | None] | None = None
    stages: Sequence[Stage] = ()
    evaluation: Evaluation | None = None
    report: Callable[[pd.DataFrame, Grid], Report] | None = None
    resources: Resources = field(default_factory=Resources)
    constants: Mapping[str, Any] = field(default_factory=dict)
    secrets: Sequence[bytes | str | int] = ()
    manifest: Mapping[str, Any] = field(default_factory=dict)
    label: Callable[[Mapping[str, Any], Grid], str] | None = None
    headline: Callable[[TrialOutcome], str] | None = None
    callbacks: Sequence[SweepCallback] = ()
    preflight: Callable[[], None] | None = None
    secret_files: Sequence[str] = ()

    def trials(self) -> list[Trial]:
        """Every trial, its id hashing its params and the constants."""
        return self.grid.trials(self.constants)

    def sweep_id(self) -> str:
        """`<name>-<hash of the trial ids>`: the same trials give the same id (resume), new ones a new id."""
        ids = sorted(t.trial_id for t in self.trials())
        return f"{self.name}-{config_hash({'trials': ids})[:8]}"

    def label_of(self, params: Mapping[str, Any]) -> str:
        """The display name of a trial."""
        return self.label(params, self.grid) if self.label is not None else self.grid.label(params)


@dataclass(frozen=True)
class RunOptions:
    """How and where a sweep runs (paths absolute after `resolved()`)."""

    storage_path: str | None = None  # Tune experiments, checkpoints and the sweep's log; shared on a cluster
    cache_root: str | None = None  # the stage store; shared on a cluster
    tracking_uri: str | None = None  # MLflow; None: $MLFLOW_TRACKING_URI or ./mlflow.db
    experiment: str | None = None  # MLflow experiment name (default: the sweep name)
    ray_address: str | None = None  # None: a new local Ray; "auto" or host:port: join a cluster
    num_cpus: int | None = None  # local Ray only
    num_gpus: int | None = None  # local Ray only
    max_concurrent_trials: int | None = None  # None: as many as the cluster's resources fit; 0: no limit
    max_failures: int = 2
    checkpoints_to_keep: int = 2
    reuse_actors: bool = False  # True breaks function trainables in Ray 2.60 (no reset_config: the trial hangs)
    verbose: int = 1  # 0: final tables only; 1: live view, Ray output to the log file; 2: everything live
    ship_code: bool = True  # on a cluster, send this project to the workers (Ray runtime env working_dir)
    record: bool = True  # False: no MLflow (tests, dry experiments)
    dry_run: bool = False

    def resolved(self) -> RunOptions:
        """Absolute storage and cache paths (defaults: ./sweeps-storage and <storage>/cache)."""
        storage = Path(self.storage_path or Path.cwd() / "sweeps-storage").expanduser().resolve()
        cache = Path(self.cache_root).expanduser().resolve() if self.cache_root else storage / "cache"
        return replace(self, storage_path=str(storage), cache_root=str(cache))
