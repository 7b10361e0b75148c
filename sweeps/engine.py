"""Generic sweep engine on Ray Tune: grids, shared stages, trials, evaluation actors, MLflow, resume.

Nothing here knows about watermarks; a sweep (e.g. `sweeps/ablation.py`) declares:

- a `Grid`: a base point plus axes varied ONE AT A TIME around it (or their Cartesian product), seeds as a
  replication axis; identical points are deduplicated and every trial gets a deterministic id (a hash of its
  params), so that resume and MLflow deduplication work. `Grid.with_overrides("rho=0,0.5 lr=1e-4")` changes
  axes from the command line; unknown axes and invalid values are rejected with the axis named.
- `Stage`s: shared work that depends on a subset of the params (and sweep constants), e.g. data generation on
  (scheme, k, key fingerprint). Each distinct dependency is built ONCE, before the trials, through
  `radio.cache.run_stage` (as Ray tasks with the stage's resources); trials receive the stage folders.
- a trial function `train(ctx: TrialContext) -> dict`, run by Ray Tune in a function trainable. It may report
  checkpoints (`ctx.report`) and resume from them (`ctx.checkpoint_dir()`), and may run a Ray Train
  `TorchTrainer` built by `ctx.torch_trainer(...)` (Ray Train V2: `Tuner(TorchTrainer)` is not supported).
- an optional `Evaluation`: a pool of Ray actors; each call loads one trial's checkpoint once and runs every
  evaluation task of that trial on it. The driver submits a trial to the pool the moment Tune reports it
  complete (a Tune `Callback`), so evaluation of early trials overlaps training of later ones.
- a `report(frame) -> Report`: tables and figures built from the results frame (one row per evaluation row).

Example (a sweep script is a declaration plus `main`):

    grid = Grid(base={"rho": 0.05, "lr": 1e-4, "k": 2}, vary={"rho": [0.0, 0.05, 0.5], "k": [1, 2, 4]},
                seeds=(0, 1), checks={"rho": lambda r: 0 <= r <= 1})
    data = Stage("data", build=make_data, depends_on=("k", "key_fingerprint"), resources=Resources(cpu=1))

    def train(ctx: TrialContext) -> dict:        # runs in a Tune trial; ctx.stages["data"] is a folder
        result = ctx.torch_trainer(train_loop, {"lr": ctx.params["lr"], "data": str(ctx.stages["data"])}).fit()
        return {"loss": result.metrics["loss"], CHECKPOINT_KEY: result.checkpoint.path}

    evaluation = Evaluation(load=load_model, tasks=lambda o: [{"task": "test"}, {"task": "control"}],
                            run=run_test, actors=1, resources=Resources(cpu=1))
    report = lambda frame: Report(tables={"pvalues": mean_std_table(frame, "rho", "task", "log10_p")},
                                  console=("pvalues",))
    sweep = Sweep("ablation", grid, train, stages=[data], evaluation=evaluation, report=report,
                  resources=Resources(cpu=0.1, workers=1), constants={"key_fingerprint": fp}, secrets=[key])
    sys.exit(main(lambda args: sweep))            # CLI: AXIS=V1,V2 overrides, --dry-run, --cartesian, ...

Design decisions (see also `radio/tracking.py`):

- All MLflow writes happen in the driver process (this module's `run`): trials and actors return plain dicts.
- Resume has three layers. (1) Ray Tune: the experiment folder `<storage_path>/<sweep_id>` is restored with
  `Tuner.restore(..., resume_unfinished=True, resume_errored=True)`; finished trials are not rerun, unfinished
  and errored ones continue from their last checkpoint; within one run `FailureConfig(max_failures)` retries a
  trial whose process died from its last checkpoint. (2) MLflow: a trial whose child run is marked complete is
  never run or logged again, even if the Tune folder is gone. (3) The stage cache: any stage (a fine-tune a
  sweep chooses to cache included) is reused by config hash.
- The sweep id is `<name>-<hash of the trial ids and constants>`: the same command gives the same id (resume);
  a changed grid gives a new Tune experiment and a new MLflow parent run.
- Tune pickles `RunConfig.callbacks` into the experiment state; our callback pickles as a stateless stub that
  forwards to the driver of the current process, so a restored experiment reports to the new driver.
- Local default: `ray.init(num_cpus=..., include_dashboard=False)`. Ray 2.60 turns token authentication on
  for a new local cluster unless `RAY_AUTH_MODE` is set, and writes a token to `~/.ray/auth_token`; the engine
  creates that file itself with mode 0600 when it is missing (Ray would create it world-readable under a
  default umask). To join a cluster pass `--ray-address auto` (or set `RAY_ADDRESS`), with the cluster's token
  in `RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import math
import os
import secrets
import shlex
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from radio.cache import StageOutput, config_hash, default_cache_root, find_complete, run_stage
from radio.config import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from radio.tracking import Tracker

log = logging.getLogger(__name__)

RESULT_KEY = "sweep_result"  # the JSON-encoded return value of `train`, in the trial's final Tune report
CHECKPOINT_KEY = "checkpoint_path"  # a `train` return key: the folder the evaluation actors load
RECORD_ARTIFACT = "trial_result.json"  # per child run: params, metrics, evaluation rows (the source of truth)
_SCALARS = (bool, int, float, str, type(None))
_REPO_ROOT = Path(__file__).resolve().parents[1]


# ==========================================================================================================
# Grid
# ==========================================================================================================


def _canonical(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def trial_id_of(params: Mapping[str, Any]) -> str:
    """Deterministic trial id: 12 hex chars of the config hash of the trial's params."""
    return config_hash(dict(params))[:12]


def _coerce(axis: str, value: Any, like: Any) -> Any:
    """Convert `value` (possibly a CLI string) to the type of the axis' base value `like`."""
    if isinstance(like, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"axis {axis}: {value!r} is not a boolean")
    if isinstance(like, int):
        if isinstance(value, bool):
            raise ConfigError(f"axis {axis}: {value!r} is not an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise ConfigError(f"axis {axis}: {value!r} is not an integer") from None
    if isinstance(like, float):
        if isinstance(value, bool):
            raise ConfigError(f"axis {axis}: {value!r} is not a number")
        try:
            number = float(value if isinstance(value, int | float) else str(value).strip())
        except ValueError:
            raise ConfigError(f"axis {axis}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"axis {axis}: {value!r} is not a finite number")
        return number
    if isinstance(like, str):
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"axis {axis}: {value!r} is not a string")
        return str(value)
    # base value None: infer the type from the text (int, then float such as 1e-4, then a YAML scalar)
    if isinstance(value, str):
        text = value.strip()
        for parse in (int, float):
            with contextlib.suppress(ValueError):
                return parse(text)
        return yaml.safe_load(text)
    return value


@dataclass(frozen=True)
class Trial:
    """One point of the sweep: its params (seed included), deterministic id, and id of its seedless point."""

    trial_id: str
    params: dict[str, Any]
    point_id: str


@dataclass(frozen=True)
class Grid:
    """A base point and the axes varied around it.

    mode "one_at_a_time" (the paper's ablations): the base point, plus for each axis in `vary` and each of its
    values, the base point with that one axis changed. mode "cartesian": the full product of the axes.
    `include` adds explicit points (partial overrides of the base, e.g. controls). `seeds` replicates every
    point; `seed_key` names the seed param. `checks` maps an axis to a validator that raises ValueError (or
    returns False) for an impossible value. Points are deduplicated; order is deterministic.
    """

    base: Mapping[str, Any]
    vary: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    mode: Literal["one_at_a_time", "cartesian"] = "one_at_a_time"
    seeds: Sequence[int] = (0,)
    include: Sequence[Mapping[str, Any]] = ()
    checks: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    seed_key: str = "seed"

    def __post_init__(self) -> None:
        if self.mode not in ("one_at_a_time", "cartesian"):
            raise ConfigError(f"grid mode: {self.mode!r} is not one of ['one_at_a_time', 'cartesian']")
        if self.seed_key in self.base:
            raise ConfigError(f"grid base: {self.seed_key!r} is the replication axis; set it with seeds=")
        for name, value in self.base.items():
            if not isinstance(name, str) or not isinstance(value, _SCALARS):
                raise ConfigError(f"axis {name}: base value {value!r} must be a scalar (bool/int/float/str/None)")
            self._check(name, value)
        unknown = sorted(set(self.vary) - set(self.base))
        if unknown:
            raise ConfigError(f"grid vary: unknown axis(es) {unknown}; known axes: {sorted(self.base)}")
        vary = {}
        for name, values in self.vary.items():
            if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
                raise ConfigError(f"axis {name}: expected a non-empty list of values, got {values!r}")
            coerced = [_coerce(name, v, self.base[name]) for v in values]
            for v in coerced:
                self._check(name, v)
            vary[name] = tuple(dict.fromkeys(coerced))  # dedup, keep order
        object.__setattr__(self, "vary", vary)
        seeds = tuple(self.seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
            raise ConfigError(f"seeds: expected a non-empty list of integers, got {self.seeds!r}")
        object.__setattr__(self, "seeds", tuple(dict.fromkeys(seeds)))
        include = []
        for i, point in enumerate(self.include):
            bad = sorted(set(point) - set(self.base))
            if bad:
                raise ConfigError(f"grid include[{i}]: unknown axis(es) {bad}; known axes: {sorted(self.base)}")
            coerced = {k: _coerce(k, v, self.base[k]) for k, v in point.items()}
            for k, v in coerced.items():
                self._check(k, v)
            include.append(coerced)
        object.__setattr__(self, "include", tuple(include))

    def _check(self, axis: str, value: Any) -> None:
        check = self.checks.get(axis)
        if check is None:
            return
        try:
            ok = check(value)
        except (ValueError, TypeError, ConfigError) as err:
            raise ConfigError(f"axis {axis}: invalid value {value!r}: {err}") from None
        if ok is False:
            raise ConfigError(f"axis {axis}: invalid value {value!r}")

    @property
    def axes(self) -> list[str]:
        return list(self.base)

    def points(self) -> list[dict[str, Any]]:
        """The distinct seedless points, in a deterministic order (base point first)."""
        base = dict(self.base)
        candidates: list[dict[str, Any]] = []
        if self.mode == "cartesian":
            names = list(self.vary)
            for combo in itertools.product(*(self.vary[n] for n in names)):
                candidates.append({**base, **dict(zip(names, combo, strict=True))})
        else:
            candidates.append(base)
            for name, values in self.vary.items():
                candidates.extend({**base, name: value} for value in values)
        candidates.extend({**base, **point} for point in self.include)
        unique: dict[str, dict[str, Any]] = {}
        for point in candidates:
            unique.setdefault(_canonical(point), point)
        return list(unique.values())

    def trials(self) -> list[Trial]:
        """Every (point, seed) pair as a Trial with a deterministic id."""
        trials = []
        for point in self.points():
            point_id = trial_id_of(point)
            for seed in self.seeds:
                params = {**point, self.seed_key: seed}
                trials.append(Trial(trial_id=trial_id_of(params), params=params, point_id=point_id))
        return trials

    def with_overrides(self, overrides: str | Sequence[str] | None) -> Grid:
        """Apply CLI overrides: `axis=v` fixes an axis at v (no longer varied); `axis=v1,v2,...` varies it
        over the values (the base value becomes v1 unless it is among them); `seed=0,1,2` sets the seeds."""
        items = parse_overrides(overrides)
        base, vary, seeds = dict(self.base), dict(self.vary), self.seeds
        for name, texts in items:
            if name == self.seed_key:
                try:
                    seeds = tuple(int(t) for t in texts)
                except ValueError:
                    raise ConfigError(f"axis {name}: seeds must be integers, got {','.join(texts)}") from None
                continue
            if name not in base:
                known = sorted([*base, self.seed_key])
                raise ConfigError(f"override {name}=...: unknown axis {name!r}; known axes: {known}")
            like = base[name]
            if like is None and name in vary and vary[name]:
                like = next((v for v in vary[name] if v is not None), None)
            values = [_coerce(name, t, like) for t in texts]
            if len(values) == 1:
                base[name] = values[0]
                vary.pop(name, None)
            else:
                if base[name] not in values:
                    base[name] = values[0]
                vary[name] = values
        return replace(self, base=base, vary=vary, seeds=seeds)

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "base": dict(self.base),
            "vary": {k: list(v) for k, v in self.vary.items()},
            "seeds": list(self.seeds),
            "include": [dict(p) for p in self.include],
        }


def parse_overrides(overrides: str | Sequence[str] | None) -> list[tuple[str, list[str]]]:
    """Parse `"rho=0,0.5,1 lr=1e-4"` (or a list of such words) into [(axis, [value texts])]."""
    if overrides is None:
        return []
    words = shlex.split(overrides) if isinstance(overrides, str) else [w for o in overrides for w in shlex.split(o)]
    parsed = []
    for word in words:
        name, sep, values = word.partition("=")
        name = name.strip()
        texts = [t.strip() for t in values.split(",")]
        if not sep or not name or not values.strip() or any(t == "" for t in texts):
            raise ConfigError(f"override {word!r}: expected AXIS=VALUE or AXIS=V1,V2,...")
        parsed.append((name, texts))
    return parsed


# ==========================================================================================================
# Resources
# ==========================================================================================================


@dataclass(frozen=True)
class Resources:
    """What one trial (or stage task, or evaluation actor) needs.

    `cpu`/`gpu`: the process itself (the Tune trial driver, the stage task, the actor). `workers`: Ray Train
    workers that the trial starts with `ctx.torch_trainer` (0: the trial trains in its own process), each with
    `cpu_per_worker`/`gpu_per_worker`. Ray Train V2 inside Tune: keep `cpu` small when `workers > 0`; use
    `workers=1` on a CPU laptop (`num_workers=0` fails inside a Tune trial).
    """

    cpu: float = 1.0
    gpu: float = 0.0
    workers: int = 0
    cpu_per_worker: float = 1.0
    gpu_per_worker: float = 0.0

    def __post_init__(self) -> None:
        for name in ("cpu", "gpu", "cpu_per_worker", "gpu_per_worker"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"resources.{name}: expected a number >= 0, got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"resources.workers: expected an integer >= 0, got {self.workers!r}")

    def bundle(self) -> dict[str, float]:
        """The Tune request of the trial process (Tune refuses an all-zero request: 0.001 CPU then)."""
        cpu = self.cpu if (self.cpu or self.gpu) else 0.001
        out = {"cpu": float(cpu)}
        if self.gpu:
            out["gpu"] = float(self.gpu)
        return out

    def totals(self) -> dict[str, float]:
        return {
            "CPU": self.cpu + self.workers * self.cpu_per_worker,
            "GPU": self.gpu + self.workers * self.gpu_per_worker,
        }

    def describe(self) -> str:
        text = f"{self.cpu:g} CPU" + (f" + {self.gpu:g} GPU" if self.gpu else "")
        if self.workers:
            per = f"{self.cpu_per_worker:g} CPU" + (f" + {self.gpu_per_worker:g} GPU" if self.gpu_per_worker else "")
            text += f"; {self.workers} Ray Train worker(s) x ({per})"
        return text


# ==========================================================================================================
# Stages
# ==========================================================================================================

StageBuild = Callable[[Path, Mapping[str, Any], Mapping[str, Path]], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Stage:
    """Shared work, built once per distinct value of the params (or sweep constants) it depends on.

    `build(out_dir, config, inputs)` writes into `out_dir`; `config` holds exactly the `depends_on` values;
    `inputs` maps each stage named in `needs` (declared earlier) to its output folder. `needed` may skip the
    stage for some trials (e.g. no generated data for a rho=0 point).
    """

    name: str
    build: StageBuild
    depends_on: Sequence[str] = ()
    needs: Sequence[str] = ()
    resources: Resources = field(default_factory=Resources)
    needed: Callable[[Mapping[str, Any]], bool] | None = None


@dataclass(frozen=True)
class StageInstance:
    stage: str
    config: dict[str, Any]
    inputs: dict[str, str]  # upstream stage name -> its hash
    digest: str
    path: Path
    trials: tuple[str, ...]


@dataclass(frozen=True)
class StageSummary:
    """What a stage plan did: built (misses) and reused (hits) instances, per stage."""

    hits: int
    misses: int
    per_stage: dict[str, tuple[int, int]]  # stage -> (hits, misses)

    def line(self) -> str:
        parts = ", ".join(f"{s}: {h} hit(s) {m} built" for s, (h, m) in self.per_stage.items())
        return f"shared stages: {self.hits + self.misses} distinct, {self.hits} cache hit(s), {self.misses} built" + (
            f" ({parts})" if parts else ""
        )


class StagePlan:
    """The distinct stage instances a set of trials needs, and which trial uses which folder."""

    def __init__(
        self,
        stages: Sequence[Stage],
        trials: Sequence[Trial],
        constants: Mapping[str, Any],
        root: Path,
        key_fingerprint: str | None = None,
    ) -> None:
        self.stages = {s.name: s for s in stages}
        if len(self.stages) != len(stages):
            raise ConfigError("stages: names must be unique")
        self.root = Path(root).resolve()
        self.key_fingerprint = key_fingerprint
        self.instances: dict[tuple[str, str], StageInstance] = {}
        self.per_trial: dict[str, dict[str, Path]] = {t.trial_id: {} for t in trials}
        users: dict[tuple[str, str], list[str]] = {}
        order = []
        for stage in stages:
            for need in stage.needs:
                if need not in order:
                    raise ConfigError(f"stage {stage.name}: needs {need!r}, which is not declared before it")
            order.append(stage.name)
        for trial in trials:
            digests: dict[str, str] = {}
            for stage in stages:
                if stage.needed is not None and not stage.needed(trial.params):
                    continue
                missing_needs = [n for n in stage.needs if n not in digests]
                if missing_needs:
                    raise ConfigError(
                        f"stage {stage.name}: trial {trial.trial_id} needs it but not its inputs {missing_needs}"
                    )
                config = {}
                for dep in stage.depends_on:
                    if dep in trial.params:
                        config[dep] = trial.params[dep]
                    elif dep in constants:
                        config[dep] = constants[dep]
                    else:
                        raise ConfigError(f"stage {stage.name}: depends on {dep!r}, neither a param nor a constant")
                inputs = {n: digests[n] for n in stage.needs}
                digest = config_hash(config, inputs)
                key = (stage.name, digest)
                if key not in self.instances:
                    self.instances[key] = StageInstance(
                        stage.name, config, inputs, digest, self.root / stage.name / digest, ()
                    )
                users.setdefault(key, []).append(trial.trial_id)
                digests[stage.name] = digest
                self.per_trial[trial.trial_id][stage.name] = self.root / stage.name / digest
        for key, ids in users.items():
            self.instances[key] = replace(self.instances[key], trials=tuple(ids))

    def by_stage(self) -> dict[str, list[StageInstance]]:
        grouped: dict[str, list[StageInstance]] = {name: [] for name in self.stages}
        for inst in self.instances.values():
            grouped[inst.stage].append(inst)
        return grouped

    def is_cached(self, inst: StageInstance) -> bool:
        return find_complete(self.root, inst.stage, inst.digest) is not None

    def run(self, executor: Literal["local", "ray"] = "ray") -> StageSummary:
        """Build every missing instance once (stage by stage; instances of one stage in parallel on Ray)."""
        per_stage: dict[str, tuple[int, int]] = {}
        for name, instances in self.by_stage().items():
            stage = self.stages[name]
            hits, todo = 0, []
            for inst in instances:
                if self.is_cached(inst):
                    hits += 1
                    log.info("cache hit: %s/%s (%d trial(s))", name, inst.digest, len(inst.trials))
                else:
                    todo.append(inst)
            for inst in todo:
                log.info("cache miss: %s/%s %s (%d trial(s))", name, inst.digest, inst.config, len(inst.trials))
            if executor == "local":
                outputs = [_build_instance(stage, inst, self.root, self.key_fingerprint) for inst in todo]
            else:
                import ray

                task = ray.remote(_build_instance).options(
                    num_cpus=stage.resources.cpu, num_gpus=stage.resources.gpu, max_retries=1
                )
                outputs = ray.get([task.remote(stage, inst, self.root, self.key_fingerprint) for inst in todo])
            built = sum(1 for out in outputs if not out.cached)
            per_stage[name] = (hits + len(outputs) - built, built)
        summary = StageSummary(
            hits=sum(h for h, _ in per_stage.values()),
            misses=sum(m for _, m in per_stage.values()),
            per_stage=per_stage,
        )
        log.info(summary.line())
        return summary


def _build_instance(stage: Stage, inst: StageInstance, root: Path, key_fingerprint: str | None) -> StageOutput:
    upstream = {name: root / name / digest for name, digest in inst.inputs.items()}
    return run_stage(
        inst.stage,
        inst.config,
        lambda out: stage.build(out, inst.config, upstream),
        inputs=inst.inputs,
        root=root,
        key_fingerprint=key_fingerprint,
    )


# ==========================================================================================================
# Trials
# ==========================================================================================================


@dataclass
class TrialContext:
    """What a trial function gets: its params, stage folders, sweep constants, and Tune/Train helpers."""

    trial_id: str
    params: dict[str, Any]
    stages: dict[str, Path]
    constants: dict[str, Any]
    storage_path: str  # the sweep's own folder (<storage>/<sweep id>): Ray Train runs and trial files go here
    resources: Resources

    def report(self, metrics: Mapping[str, Any], checkpoint_dir: str | Path | None = None) -> None:
        """Report intermediate metrics to Tune, with a checkpoint folder (copied to storage) if given."""
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(dict(metrics), checkpoint=checkpoint)

    @contextlib.contextmanager
    def checkpoint_dir(self) -> Iterator[Path | None]:
        """The folder of the latest checkpoint of this trial (after a retry or resume), or None."""
        from ray import tune

        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as folder:
            yield Path(folder)

    def torch_trainer(
        self,
        train_loop_per_worker: Callable[..., Any],
        train_loop_config: Mapping[str, Any] | None = None,
        *,
        max_failures: int = 1,
        report_to_tune: bool = True,
        **kwargs: Any,
    ) -> Any:
        """A Ray Train V2 `TorchTrainer` for this trial (call `.fit()`), with workers from `resources`.

        Its run is named after the trial under the sweep's storage, so a retried or resumed trial builds the
        same run and Ray Train restores it from its latest checkpoint (`ray.train.get_checkpoint()` in the
        worker loop). `report_to_tune` forwards worker reports to Tune (`TuneReportCallback`).
        """
        import ray.train
        from ray.train.torch import TorchTrainer

        res = self.resources
        per_worker = {"CPU": res.cpu_per_worker}
        if res.gpu_per_worker:
            per_worker["GPU"] = res.gpu_per_worker
        scaling = ray.train.ScalingConfig(
            num_workers=max(1, res.workers), use_gpu=res.gpu_per_worker > 0, resources_per_worker=per_worker
        )
        callbacks = list(kwargs.pop("callbacks", []))
        if report_to_tune:
            from ray.tune.integration.ray_train import TuneReportCallback

            callbacks.append(TuneReportCallback())
        run_config = ray.train.RunConfig(
            name=f"train-{self.trial_id}",
            storage_path=self.storage_path,
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
        )
        return TorchTrainer(
            train_loop_per_worker,
            train_loop_config=dict(train_loop_config or {}),
            scaling_config=scaling,
            run_config=run_config,
            **kwargs,
        )


def _run_trial(
    config: dict[str, Any],
    train: Callable[[TrialContext], Mapping[str, Any] | None],
    constants: dict[str, Any],
    storage_path: str,
    resources: Resources,
) -> None:
    from ray import tune

    spec = config["trial"]
    ctx = TrialContext(
        trial_id=spec["trial_id"],
        params=dict(spec["params"]),
        stages={k: Path(v) for k, v in spec["stages"].items()},
        constants=dict(constants),
        storage_path=storage_path,
        resources=resources,
    )
    result = dict(train(ctx) or {})
    tune.report({RESULT_KEY: json.dumps(result, default=str), "sweep_done": 1})


def _trial_dirname(trial: Any) -> str:
    return str(trial.config["trial"]["trial_id"])


# ==========================================================================================================
# Evaluation actors
# ==========================================================================================================


@dataclass(frozen=True)
class Evaluation:
    """Evaluation of finished trials on a pool of Ray actors.

    `load(checkpoint_path, params)` runs once per trial in an actor and returns anything (e.g. a model);
    `tasks(outcome)` lists the evaluation tasks of a trial (dicts; e.g. every test and control);
    `run(loaded, task)` returns a dict of results. Each task becomes one row: {**task, **results}.
    """

    load: Callable[[str | None, Mapping[str, Any]], Any]
    tasks: Callable[[TrialOutcome], Sequence[Mapping[str, Any]]]
    run: Callable[[Any, Mapping[str, Any]], Mapping[str, Any]]
    actors: int = 1
    resources: Resources = field(default_factory=Resources)


class _EvalWorker:
    """Ray actor body: evaluates one trial per call (load once, run every task)."""

    def __init__(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation

    def evaluate(
        self, checkpoint: str | None, params: dict[str, Any], tasks: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        loaded = self.evaluation.load(checkpoint, params)
        rows = []
        for task in tasks:
            rows.append({**task, **dict(self.evaluation.run(loaded, task))})
        del loaded
        return rows


class ActorPool:
    """A small pool of evaluation actors: submit jobs, poll finished ones without blocking, drain at the end.

    Actors are created on the first submit (so they do not hold resources before there is work) with
    `max_restarts`/`max_task_retries`, so an actor that dies is restarted and its job retried by Ray.
    """

    def __init__(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        self._idle: list[Any] = []
        self._actors: list[Any] = []
        self._queue: deque[tuple[Any, tuple[Any, ...]]] = deque()
        self._inflight: dict[Any, tuple[Any, Any]] = {}

    def _start(self) -> None:
        import ray

        res = self.evaluation.resources
        cls = ray.remote(_EvalWorker).options(num_cpus=res.cpu, num_gpus=res.gpu, max_restarts=2, max_task_retries=2)
        self._actors = [cls.remote(self.evaluation) for _ in range(max(1, self.evaluation.actors))]
        self._idle = list(self._actors)

    def submit(self, key: Any, checkpoint: str | None, params: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
        if not self._actors:
            self._start()
        self._queue.append((key, (checkpoint, params, tasks)))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            actor = self._idle.pop()
            key, args = self._queue.popleft()
            self._inflight[actor.evaluate.remote(*args)] = (actor, key)

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._inflight)

    def poll(self, timeout: float = 0.0) -> list[tuple[Any, list[dict[str, Any]] | BaseException]]:
        """Finished jobs as (key, rows or the exception), waiting at most `timeout` seconds for the first."""
        import ray

        if not self._inflight:
            return []
        ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=timeout)
        if ready:
            more, _ = ray.wait(list(self._inflight), num_returns=len(self._inflight), timeout=0)
            ready = list(dict.fromkeys([*ready, *more]))
        done = []
        for ref in ready:
            actor, key = self._inflight.pop(ref)
            try:
                done.append((key, ray.get(ref)))
            except Exception as err:  # an evaluation error is recorded on its trial, not fatal to the sweep
                done.append((key, err))
            self._idle.append(actor)
        self._dispatch()
        return done

    def shutdown(self) -> None:
        import ray

        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self._actors, self._idle = [], []


# ==========================================================================================================
# Sweep declaration and results
# ==========================================================================================================


@dataclass
class TrialOutcome:
    """A finished trial as the driver sees it: params, what `train` returned, evaluation rows, error."""

    trial_id: str
    params: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    checkpoint_path: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "params": self.params,
            "metrics": self.metrics,
            "checkpoint_path": self.checkpoint_path,
            "rows": self.rows,
            "error": self.error,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TrialOutcome:
        return cls(
            trial_id=record["trial_id"],
            params=dict(record["params"]),
            metrics=dict(record.get("metrics") or {}),
            checkpoint_path=record.get("checkpoint_path"),
            rows=list(record.get("rows") or []),
            error=record.get("error"),
        )


@dataclass
class Report:
    """Tables (logged to the parent run as MLflow tables + CSV + Markdown), figures (PNG), console tables."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    console: Sequence[str] = ()


@dataclass(frozen=True)
class Sweep:
    """Everything a sweep declares. `constants` are sweep-wide values (recorded in MLflow, usable as stage
    dependencies, part of the sweep id), never secrets; `secrets` are registered with the tracking guard."""

    name: str
    grid: Grid
    train: Callable[[TrialContext], Mapping[str, Any] | None]
    stages: Sequence[Stage] = ()
    evaluation: Evaluation | None = None
    report: Callable[[pd.DataFrame], Report] | None = None
    resources: Resources = field(default_factory=Resources)
    constants: Mapping[str, Any] = field(default_factory=dict)
    secrets: Sequence[bytes | str | int] = ()
    key_fingerprint: str | None = None  # recorded in stage manifests (radio.cache)

    def trials(self) -> list[Trial]:
        return self.grid.trials()

    def sweep_id(self) -> str:
        ids = sorted(t.trial_id for t in self.trials())
        return f"{self.name}-{config_hash({'trials': ids, 'constants': dict(self.constants)})[:8]}"


@dataclass(frozen=True)
class RunOptions:
    """How and where a sweep runs (all paths absolute after `resolved()`)."""

    storage_path: str | None = None  # Tune experiments and checkpoints; a shared file system on a cluster
    cache_root: str | None = None  # radio.cache root; shared on a cluster
    tracking_uri: str | None = None
    experiment: str | None = None  # MLflow experiment name (default: the sweep name)
    ray_address: str | None = None  # None: a new local Ray; "auto" or host:port: connect
    num_cpus: int | None = None  # local Ray only
    num_gpus: int | None = None  # local Ray only
    max_concurrent_trials: int = 1
    max_failures: int = 2
    checkpoints_to_keep: int = 2
    reuse_actors: bool = False  # True breaks function trainables in Ray 2.60 (no reset_config: the trial hangs)
    verbose: int = 1
    dry_run: bool = False

    def resolved(self) -> RunOptions:
        storage = Path(self.storage_path or Path.cwd() / ".radio" / "sweeps").expanduser().resolve()
        cache = Path(self.cache_root).expanduser().resolve() if self.cache_root else default_cache_root()
        return replace(self, storage_path=str(storage), cache_root=str(cache))


@dataclass
class SweepResult:
    sweep_id: str
    outcomes: list[TrialOutcome]
    frame: pd.DataFrame
    report: Report | None
    stages: StageSummary | None
    parent_run_id: str | None
    trained: list[str]  # trial ids that ran in Tune during this call
    wall_s: float


def results_frame(outcomes: Sequence[TrialOutcome]) -> pd.DataFrame:
    """One row per evaluation row (one per trial without evaluation): trial_id, params, train metrics, row."""
    import pandas as pd

    records = []
    for outcome in outcomes:
        base = {"trial_id": outcome.trial_id, **outcome.params}
        metrics = {k: v for k, v in outcome.metrics.items() if isinstance(v, _SCALARS)}
        if outcome.rows:
            records.extend({**base, **metrics, **row} for row in outcome.rows)
        else:
            records.append({**base, **metrics})
    return pd.DataFrame.from_records(records)


# ==========================================================================================================
# Driver: Tune callback, MLflow logging, evaluation dispatch
# ==========================================================================================================

_ACTIVE_DRIVER: _Driver | None = None


def _callback_class() -> type:
    from ray.tune import Callback

    class SweepCallback(Callback):
        """Forwards trial events to the driver of this process; pickles without state (see module doc)."""

        def __reduce__(self) -> tuple[Any, ...]:
            return (_make_callback, ())

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            if _ACTIVE_DRIVER is not None:
                _ACTIVE_DRIVER.on_trial_done(trial.config, trial.last_result, trial.checkpoint, None, live=True)

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            if _ACTIVE_DRIVER is not None:
                _ACTIVE_DRIVER.on_trial_done(trial.config, trial.last_result, trial.checkpoint, _error_text(trial))

        def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
            if _ACTIVE_DRIVER is not None:
                _ACTIVE_DRIVER.poll()

    return SweepCallback


_CALLBACK_CLASS: type | None = None


def _error_text(trial: Any) -> str:
    """The end of the trial's error file (Tune writes the traceback there), or a generic message."""
    path = getattr(trial, "error_file", None)
    with contextlib.suppress(OSError, TypeError):
        if path and Path(path).is_file():
            return Path(path).read_text(errors="replace")[-2000:].strip() or "trial errored"
    return "trial errored"


def _make_callback() -> Any:
    global _CALLBACK_CLASS
    if _CALLBACK_CLASS is None:
        _CALLBACK_CLASS = _callback_class()
    return _CALLBACK_CLASS()


class _Driver:
    """The single MLflow writer: logs finished trials, dispatches evaluations, collects outcomes."""

    def __init__(self, sweep: Sweep, sweep_id: str, tracker: Tracker | None, parent_run_id: str | None) -> None:
        self.sweep = sweep
        self.sweep_id = sweep_id
        self.tracker = tracker
        self.parent_run_id = parent_run_id
        self.outcomes: dict[str, TrialOutcome] = {}
        self.pool = ActorPool(sweep.evaluation) if sweep.evaluation else None
        self._children: dict[str, str] = {}
        self.ran: set[str] = set()  # trials that Tune ran to completion in this process (not restored)

    # -- bookkeeping -----------------------------------------------------------------------------------------

    def load_completed(self) -> None:
        """Outcomes of trials already complete in MLflow (from a previous run of the same sweep)."""
        if self.tracker is None:
            return
        for trial_id, run in self.tracker.child_runs(self.sweep_id).items():
            self._children[trial_id] = run.info.run_id
            if run.data.tags.get("trial_complete") != "1":
                continue
            record = self.tracker.load_dict(run.info.run_id, RECORD_ARTIFACT)
            if record is not None:
                self.outcomes[trial_id] = TrialOutcome.from_record(record)

    def is_complete(self, trial_id: str) -> bool:
        outcome = self.outcomes.get(trial_id)
        return outcome is not None and outcome.error is None

    def _child(self, outcome: TrialOutcome) -> str | None:
        if self.tracker is None or self.parent_run_id is None:
            return None
        run_id = self._children.get(outcome.trial_id)
        if run_id is None:
            run_id, _ = self.tracker.child_run(self.parent_run_id, self.sweep_id, outcome.trial_id)
            self._children[outcome.trial_id] = run_id
        return run_id

    # -- events ----------------------------------------------------------------------------------------------

    def on_trial_done(
        self,
        config: Mapping[str, Any],
        last_result: Mapping[str, Any] | None,
        checkpoint: Any,
        error: str | None,
        live: bool = False,
    ) -> None:
        spec = config["trial"]
        trial_id = spec["trial_id"]
        if live and error is None:
            self.ran.add(trial_id)
        if self.is_complete(trial_id) or (trial_id in self.outcomes and error is not None):
            return
        outcome = TrialOutcome(trial_id=trial_id, params=dict(spec["params"]))
        result = (last_result or {}).get(RESULT_KEY)
        if error is None and result is None:
            error = "the trial ended without a final result"
        if error is None:
            metrics = json.loads(result)
            outcome.checkpoint_path = metrics.pop(CHECKPOINT_KEY, None) or (
                checkpoint.path if checkpoint is not None else None
            )
            outcome.metrics = metrics
        else:
            outcome.error = error
        self.outcomes[trial_id] = outcome
        try:
            self._log_start(outcome)
        except Exception as err:
            if type(err).__name__ == "SecretLeakError":
                raise
            log.warning("mlflow logging of trial %s failed (%s); will retry at the end", trial_id, err)
            self.outcomes.pop(trial_id, None)
            return
        if outcome.error is not None:
            log.warning("trial %s failed: %s", trial_id, outcome.error)
            return
        if self.pool is not None and self.sweep.evaluation is not None:
            tasks = [dict(t) for t in self.sweep.evaluation.tasks(outcome)]
            self.pool.submit(trial_id, outcome.checkpoint_path, outcome.params, tasks)
            log.info("trial %s: %d evaluation task(s) submitted", trial_id, len(tasks))
        else:
            self._finalize(outcome)

    def poll(self, timeout: float = 0.0) -> None:
        if self.pool is None:
            return
        for trial_id, rows in self.pool.poll(timeout):
            outcome = self.outcomes[trial_id]
            if isinstance(rows, BaseException):
                outcome.error = f"evaluation failed: {''.join(traceback.format_exception_only(rows)).strip()}"
                log.warning("trial %s: %s", trial_id, outcome.error)
                run_id = self._child(outcome)
                if run_id and self.tracker:
                    self._tag_error(run_id, outcome.error)
                continue
            outcome.rows = rows
            self._finalize(outcome)

    def drain(self) -> None:
        while self.pool is not None and self.pool.pending:
            self.poll(timeout=1.0)

    # -- MLflow ----------------------------------------------------------------------------------------------

    def _log_start(self, outcome: TrialOutcome) -> None:
        run_id = self._child(outcome)
        if run_id is None or self.tracker is None:
            return
        self.tracker.log_params(run_id, outcome.params)
        if outcome.error is not None:
            self._tag_error(run_id, outcome.error)
            return
        self.tracker.log_metrics(run_id, outcome.metrics)
        if outcome.checkpoint_path:
            self.tracker.set_tags(run_id, {CHECKPOINT_KEY: outcome.checkpoint_path})

    def _tag_error(self, run_id: str, error: str) -> None:
        """Record a failure on the trial's run; a traceback that quotes a secret is withheld, not logged."""
        from radio.tracking import SecretLeakError

        assert self.tracker is not None
        try:
            self.tracker.set_tags(run_id, {"error": error[-5000:]})
        except SecretLeakError:
            self.tracker.set_tags(run_id, {"error": "(withheld: the error text contains secret material)"})
        self.tracker.finish(run_id, "FAILED")

    def _finalize(self, outcome: TrialOutcome) -> None:
        run_id = self._child(outcome)
        if run_id is None or self.tracker is None:
            return
        metrics = {}
        for i, row in enumerate(outcome.rows):
            label = str(row.get("task", i))
            metrics.update({f"{label}.{k}": v for k, v in row.items() if k != "task"})
        self.tracker.log_metrics(run_id, metrics)
        if outcome.rows:
            import pandas as pd

            self.tracker.log_table(run_id, pd.DataFrame.from_records(outcome.rows), "evaluations")
        self.tracker.log_dict(run_id, outcome.record(), RECORD_ARTIFACT)
        if "error" in self.tracker.client.get_run(run_id).data.tags:  # a failure of an earlier attempt
            self.tracker.client.delete_tag(run_id, "error")
        self.tracker.mark_complete(run_id)
        log.info("trial %s recorded in MLflow (run %s)", outcome.trial_id, run_id)


# ==========================================================================================================
# Ray
# ==========================================================================================================


def _ensure_local_token() -> None:
    """Token auth for a NEW local cluster: Ray 2.60 enables it unless RAY_AUTH_MODE is set and writes
    `~/.ray/auth_token` with the process umask; create it first with mode 0600 if no token is configured."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    path = Path.home() / ".ray" / "auth_token"
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))


def init_ray(options: RunOptions) -> bool:
    """Start or join Ray; True when this call did it (and the caller should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = options.ray_address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=True)
        log.info("connected to the Ray cluster at %s", address)
        return True
    _ensure_local_token()
    # Trial actors and Ray Train workers must import the sweep modules: put the repository on their path.
    paths = [str(_REPO_ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    ray.init(
        address="local",  # always a NEW instance: never join a `ray start` cluster by accident (use "auto")
        num_cpus=options.num_cpus,
        num_gpus=options.num_gpus,
        include_dashboard=False,
        log_to_driver=True,
        configure_logging=True,
        logging_level=logging.WARNING,
    )
    log.info("started a local Ray instance (%s CPUs)", options.num_cpus or "all")
    return True


# ==========================================================================================================
# Running
# ==========================================================================================================


def describe(sweep: Sweep, options: RunOptions | None = None) -> str:
    """The dry-run text: trials, shared stages (with cache status) and the resources each needs."""
    options = (options or RunOptions()).resolved()
    trials = sweep.trials()
    base = dict(sweep.grid.base)
    lines = [
        f"sweep {sweep.name}: id {sweep.sweep_id()}, {len(trials)} trial(s) "
        f"({len(sweep.grid.points())} point(s) x {len(sweep.grid.seeds)} seed(s), mode {sweep.grid.mode})",
        f"base point: {json.dumps(base, default=str)}",
        f"trial resources: {sweep.resources.describe()}; max concurrent trials {options.max_concurrent_trials}",
        "trials:",
    ]
    for trial in trials:
        delta = {k: v for k, v in trial.params.items() if k in base and base[k] != v}
        seed = trial.params[sweep.grid.seed_key]
        lines.append(f"  {trial.trial_id}  seed={seed}  {json.dumps(delta, default=str) if delta else '(base)'}")
    plan = StagePlan(sweep.stages, trials, sweep.constants, Path(options.cache_root or "."), sweep.key_fingerprint)
    lines.append(f"shared stages (cache root {plan.root}):")
    for name, instances in plan.by_stage().items():
        stage = plan.stages[name]
        cached = sum(1 for inst in instances if plan.is_cached(inst))
        lines.append(
            f"  {name}: depends on {list(stage.depends_on)}; {len(instances)} distinct, {cached} cached; "
            f"resources {stage.resources.describe()}"
        )
        for inst in instances:
            state = "cached" if plan.is_cached(inst) else "to build"
            lines.append(
                f"    {inst.digest} {json.dumps(inst.config, default=str)} {state}, {len(inst.trials)} trial(s)"
            )
    if sweep.evaluation is not None:
        ev = sweep.evaluation
        lines.append(f"evaluation: {ev.actors} actor(s), each {ev.resources.describe()}")
    lines.append(f"storage: {options.storage_path}/{sweep.sweep_id()}")
    return "\n".join(lines)


def run(sweep: Sweep, options: RunOptions | None = None) -> SweepResult:
    """Run (or resume) a sweep: stages, Tune trials, evaluations, MLflow logging, report tables."""
    from radio.tracking import SecretGuard, Tracker, print_table

    global _ACTIVE_DRIVER
    start = time.perf_counter()
    options = (options or RunOptions()).resolved()
    if options.dry_run:
        print(describe(sweep, options))
        return SweepResult(sweep.sweep_id(), [], results_frame([]), None, None, None, [], 0.0)
    trials = sweep.trials()
    sweep_id = sweep.sweep_id()
    guard = SecretGuard()
    for secret in sweep.secrets:
        guard.register(secret)
    tracker = Tracker(options.tracking_uri, experiment=options.experiment or sweep.name, guard=guard)
    parent = tracker.parent_run(sweep_id, run_name=sweep_id, tags={"sweep_name": sweep.name})
    tracker.log_params(
        parent,
        {
            "sweep_name": sweep.name,
            "mode": sweep.grid.mode,
            "n_trials": len(trials),
            "seeds": list(sweep.grid.seeds),
            **{f"const.{k}": v for k, v in sweep.constants.items()},
        },
    )
    tracker.log_dict(parent, {"grid": sweep.grid.describe(), "trials": [t.__dict__ for t in trials]}, "sweep.json")
    driver = _Driver(sweep, sweep_id, tracker, parent)
    driver.load_completed()
    todo = [t for t in trials if not driver.is_complete(t.trial_id)]
    log.info("sweep %s: %d trial(s), %d already complete in MLflow", sweep_id, len(trials), len(trials) - len(todo))
    plan = StagePlan(sweep.stages, todo, sweep.constants, Path(options.cache_root), sweep.key_fingerprint)
    stage_summary: StageSummary | None = None
    trained: list[str] = []
    started_ray = False
    try:
        if todo:
            started_ray = init_ray(options)
            stage_summary = plan.run("ray")
            print(stage_summary.line())
            tracker.set_tags(parent, {"stage_cache_hits": stage_summary.hits, "stage_builds": stage_summary.misses})
            trained = _fit(sweep, todo, plan, options, sweep_id, driver)
        else:
            print(f"all {len(trials)} trial(s) of {sweep_id} are already recorded in MLflow: nothing to run")
        outcomes = [driver.outcomes[t.trial_id] for t in trials if t.trial_id in driver.outcomes]
        frame = results_frame([o for o in outcomes if o.error is None])
        report = sweep.report(frame) if sweep.report is not None and len(frame) else None
        if report is not None:
            for name, table in report.tables.items():
                tracker.log_table(parent, table, name)
            for name, figure in report.figures.items():
                tracker.log_figure(parent, figure, name)
            for name in report.console:
                print_table(report.tables[name], title=f"{name}:")
        failed = [o.trial_id for o in outcomes if o.error is not None]
        missing = [t.trial_id for t in trials if t.trial_id not in driver.outcomes]
        tracker.set_tags(parent, {"n_complete": len(outcomes) - len(failed), "n_failed": len(failed)})
        tracker.finish(parent, "FINISHED" if not failed and not missing else "FAILED")
        if failed or missing:
            print(f"sweep {sweep_id}: {len(failed)} failed and {len(missing)} missing trial(s); rerun to resume")
    finally:
        _ACTIVE_DRIVER = None
        if driver.pool is not None:
            driver.pool.shutdown()
        if started_ray:
            import ray

            ray.shutdown()
    return SweepResult(sweep_id, outcomes, frame, report, stage_summary, parent, trained, time.perf_counter() - start)


def _fit(
    sweep: Sweep, todo: list[Trial], plan: StagePlan, options: RunOptions, sweep_id: str, driver: _Driver
) -> list[str]:
    """Run the Tune experiment (new or restored) and hand every finished trial to the driver."""
    from ray import tune

    global _ACTIVE_DRIVER
    # Trials keep their Ray Train runs and files under the sweep's own folder: a trial id hashes its params
    # only, so a folder shared between sweeps would hand one sweep's checkpoints to another's trial.
    train, constants, storage, resources = (
        sweep.train,
        dict(sweep.constants),
        str(Path(options.storage_path) / sweep_id),
        sweep.resources,
    )

    def sweep_trial(config: dict[str, Any]) -> None:
        _run_trial(config, train, constants, storage, resources)

    trainable = tune.with_resources(sweep_trial, resources.bundle())
    experiment_path = str(Path(options.storage_path) / sweep_id)
    if tune.Tuner.can_restore(experiment_path):
        log.info("resuming the Tune experiment at %s", experiment_path)
        tuner = tune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        space = [
            {
                "trial_id": t.trial_id,
                "params": t.params,
                "stages": {k: str(v) for k, v in plan.per_trial[t.trial_id].items()},
            }
            for t in todo
        ]
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(space)},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=options.max_concurrent_trials,
                reuse_actors=options.reuse_actors,
                trial_dirname_creator=_trial_dirname,
                trial_name_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=sweep_id,
                storage_path=options.storage_path,
                failure_config=tune.FailureConfig(max_failures=options.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=options.checkpoints_to_keep),
                callbacks=[_make_callback()],
                verbose=options.verbose,
            ),
        )
    _ACTIVE_DRIVER = driver
    try:
        grid = tuner.fit()
    finally:
        _ACTIVE_DRIVER = None
    # Reconcile: trials restored as already finished fire no callback; anything missed is handled here.
    for result in grid:
        config = result.config or {}
        if "trial" not in config:
            continue
        error = None if result.error is None else f"{type(result.error).__name__}: {result.error}"
        driver.on_trial_done(config, result.metrics, result.checkpoint, error)
    driver.drain()
    return sorted(driver.ran)


# ==========================================================================================================
# Command line
# ==========================================================================================================


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The engine's standard options (a sweep script adds its own, e.g. --preset, --key-file)."""
    parser.add_argument("overrides", nargs="*", metavar="AXIS=V1,V2", help="override grid axes, e.g. rho=0,0.5,1")
    parser.add_argument("--cartesian", action="store_true", help="full Cartesian product instead of one-at-a-time")
    parser.add_argument("--dry-run", action="store_true", help="print trials, stages and resources; start nothing")
    parser.add_argument("--tracking-uri", default=None, help="MLflow URI (default $MLFLOW_TRACKING_URI or ./mlflow.db)")
    parser.add_argument("--experiment", default=None, help="MLflow experiment name (default: the sweep name)")
    parser.add_argument(
        "--storage-path", default=None, help="Tune storage (shared FS on a cluster; default ./.radio/sweeps)"
    )
    parser.add_argument("--cache-root", default=None, help="stage cache root (default $RADIO_CACHE or ~/.cache/radio)")
    parser.add_argument("--ray-address", default=None, help="'auto' or HOST:PORT to join a cluster; default local Ray")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a new local Ray instance")
    parser.add_argument("--num-gpus", type=int, default=None, help="GPUs of a new local Ray instance")
    parser.add_argument("--max-concurrent-trials", type=int, default=1)
    parser.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial (from its checkpoint)")
    return parser


def options_from_args(args: argparse.Namespace) -> RunOptions:
    for name in ("max_concurrent_trials", "max_failures"):
        if getattr(args, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 0")
    return RunOptions(
        storage_path=args.storage_path,
        cache_root=args.cache_root,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        ray_address=args.ray_address,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        max_concurrent_trials=args.max_concurrent_trials,
        max_failures=args.max_failures,
        dry_run=args.dry_run,
    )


def apply_args(sweep: Sweep, args: argparse.Namespace) -> Sweep:
    """The sweep with the CLI grid overrides and --cartesian applied (errors name the axis)."""
    grid = sweep.grid.with_overrides(args.overrides)
    if args.cartesian:
        grid = replace(grid, mode="cartesian")
    return replace(sweep, grid=grid)


def main(
    build: Callable[[argparse.Namespace], Sweep],
    argv: Sequence[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """Parse the command line, build the sweep with `build(args)`, apply overrides, run or dry-run it."""
    parser = add_arguments(parser or argparse.ArgumentParser())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sweep = apply_args(build(args), args)
        options = options_from_args(args)
        sweep.trials()  # validate the grid before anything starts
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = run(sweep, options)
    failed = [o for o in result.outcomes if o.error]
    return 1 if failed or (not options.dry_run and len(result.outcomes) < len(sweep.trials())) else 0


__all__ = [
    "CHECKPOINT_KEY",
    "ActorPool",
    "Evaluation",
    "Grid",
    "Report",
    "Resources",
    "RunOptions",
    "Stage",
    "StagePlan",
    "StageSummary",
    "Sweep",
    "SweepResult",
    "Trial",
    "TrialContext",
    "TrialOutcome",
    "add_arguments",
    "apply_args",
    "describe",
    "init_ray",
    "main",
    "options_from_args",
    "parse_overrides",
    "results_frame",
    "run",
    "trial_id_of",
]
