"""Shared stages: work built once per distinct value of the params and constants it depends on, before the trials.

A stage instance lives in the stage store (package `stagestore`) under `<cache root>/<stage>/<hash of config and
inputs>`; trials and evaluations receive the folders by stage name.

A long build (a model's training) can report how far it is: while it runs, `stagestore.progress_file()` names a file
(`<cache root>/<stage>/.progress-<hash>.log`) where it appends one line per update, and the plan relays the newest
line to the sweep's live view every `progress_every_s` seconds.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from stagestore import PROGRESS_ENV, StageOutput, config_hash, find_complete, run_stage
from sweeps.engine.errors import ConfigError, StageBuildError, first_line
from sweeps.engine.grid import Trial
from sweeps.engine.resources import Resources

log = logging.getLogger(__name__)

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
    """One folder of a stage: its config, the hashes of its inputs, and the trials that use it."""

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
        manifest: Mapping[str, Any] | None = None,
    ) -> None:
        self.stages = {s.name: s for s in stages}
        if len(self.stages) != len(stages):
            raise ConfigError("stages: names must be unique")
        self.root = Path(root).resolve()
        self.manifest = dict(manifest or {})
        self.instances: dict[tuple[str, str], StageInstance] = {}
        self.per_trial: dict[str, dict[str, Path]] = {t.trial_id: {} for t in trials}
        self.params = {t.trial_id: dict(t.params) for t in trials}
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

    def describe(self, inst: StageInstance) -> str:
        """The stage and the first trial point that needs it (an instance may serve many), for error messages."""
        params = self.params.get(inst.trials[0], {}) if inst.trials else {}
        point = " ".join(f"{k}={v}" for k, v in params.items())
        more = f" and {len(inst.trials) - 1} more trial(s)" if len(inst.trials) > 1 else ""
        return f"stage {inst.stage} {inst.digest} (needed by {point or 'no trial'}{more})"

    def is_cached(self, inst: StageInstance) -> bool:
        return find_complete(self.root, inst.stage, inst.digest) is not None

    def run(
        self,
        executor: Literal["local", "ray"] = "ray",
        progress: Callable[[str], None] | None = None,
        progress_every_s: float = 30.0,
    ) -> StageSummary:
        """Build every missing instance once (stage by stage; instances of one stage in parallel on Ray).

        `progress` receives one line per stage that has something to build, before and after the build, and on
        Ray, at most every `progress_every_s` seconds, the newest line each running build wrote to its progress
        file (see `stagestore.progress_file`).
        """
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
            started = time.perf_counter()
            if todo and progress is not None:
                progress(f"stage {name}: building {len(todo)} ({hits} cached)")
            refs: list[Any] = []
            if executor == "ray":
                import ray

                task = ray.remote(_build_instance).options(
                    num_cpus=stage.resources.cpu, num_gpus=stage.resources.gpu, max_retries=1
                )
                refs = [task.remote(stage, inst, self.root, self.manifest) for inst in todo]  # all start at once
            if refs and progress is not None:
                self._relay_progress(name, todo, refs, progress, progress_every_s)
            outputs = []
            for i, inst in enumerate(todo):
                try:
                    out = ray.get(refs[i]) if refs else _build_instance(stage, inst, self.root, self.manifest)
                except Exception as err:  # name the instance: one stage may have many (one per scheme and k...)
                    raise StageBuildError(f"{self.describe(inst)}: {first_line(err)}") from err
                outputs.append(out)
            built = sum(1 for out in outputs if not out.cached)
            if todo and progress is not None:
                progress(f"stage {name}: {built} built in {time.perf_counter() - started:.0f} s")
            per_stage[name] = (hits + len(outputs) - built, built)
        summary = StageSummary(
            hits=sum(h for h, _ in per_stage.values()),
            misses=sum(m for _, m in per_stage.values()),
            per_stage=per_stage,
        )
        log.info(summary.line())
        return summary

    def _relay_progress(
        self,
        name: str,
        todo: Sequence[StageInstance],
        refs: list[Any],
        progress: Callable[[str], None],
        every_s: float,
    ) -> None:
        """Until every build of this stage ends, pass on each one's newest progress line when it changed, at most
        every `every_s` seconds; a build that writes none is silent."""
        import ray

        files = {inst.digest: progress_file(self.root, inst.stage, inst.digest) for inst in todo}
        shown: dict[str, str] = {}
        pending = list(refs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=every_s)
            if not pending:
                break
            for inst in todo:
                line = _last_line(files[inst.digest])
                if line and line != shown.get(inst.digest):
                    shown[inst.digest] = line
                    tag = f" {inst.digest[:8]}" if len(todo) > 1 else ""
                    progress(f"stage {name}{tag}: {line}")


def progress_file(root: Path, stage: str, digest: str) -> Path:
    """Where the build of `stage` instance `digest` appends its progress lines (outside the instance's folder,
    which the stage store only creates when the build completes)."""
    return Path(root) / stage / f".progress-{digest}.log"


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 4096))
            lines = file.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def _build_instance(stage: Stage, inst: StageInstance, root: Path, manifest: Mapping[str, Any]) -> StageOutput:
    upstream = {name: root / name / digest for name, digest in inst.inputs.items()}
    path = progress_file(root, inst.stage, inst.digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a previous attempt's lines would read as this one's
    previous = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = str(path)
    try:
        return run_stage(
            inst.stage,
            inst.config,
            lambda out: stage.build(out, inst.config, upstream),
            root,
            inputs=inst.inputs,
            manifest=manifest,
        )
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = previous
        path.unlink(missing_ok=True)
