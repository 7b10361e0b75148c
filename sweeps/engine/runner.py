"""Running a sweep: resume and reuse, stages, Tune trials or evaluation-only points, evaluation, report.

Resume has three layers. (1) MLflow: a trial complete in MLflow (this sweep's, or any earlier sweep's with the
same trial id) is not run again; recorded evaluation chunks are not redone. (2) Ray Tune: the experiment folder
`<storage>/<sweep id>` is restored (`resume_unfinished`, `resume_errored`), so unfinished trials continue from
their last checkpoint, and `FailureConfig(max_failures)` retries a trial whose process died. (3) The stage store:
every stage is reused by the hash of its config and inputs.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from sweeps.engine import driver as driver_module
from sweeps.engine.callbacks import SweepStart
from sweeps.engine.console import LiveView, output_to_log
from sweeps.engine.driver import Driver, make_tune_callback
from sweeps.engine.errors import ConfigError, SweepFailedError, first_line
from sweeps.engine.grid import Trial
from sweeps.engine.outcomes import Report, SweepResult, results_frame
from sweeps.engine.ray_session import check_nodes, init_ray
from sweeps.engine.recording import MLflowRecorder
from sweeps.engine.resources import Resources, check_fits, local_resources, trials_that_fit
from sweeps.engine.secrets import SecretGuard
from sweeps.engine.stages import StagePlan, StageSummary
from sweeps.engine.sweep import RunOptions, Sweep
from sweeps.engine.tracking import resolve_tracking_uri
from sweeps.engine.trial import run_trial, trial_dirname

log = logging.getLogger(__name__)


def describe(sweep: Sweep, options: RunOptions | None = None) -> str:
    """The dry-run text: trials, shared stages (with cache status) and the resources each needs."""
    options = (options or RunOptions()).resolved()
    trials = sweep.trials()
    limit = options.max_concurrent_trials
    concurrency = "auto (as many as the resources fit)" if limit is None else str(limit)
    lines = [
        f"sweep {sweep.name}: id {sweep.sweep_id()}, {len(trials)} trial(s) "
        f"({len(sweep.grid.points())} point(s) x {len(sweep.grid.seeds)} seed(s), mode {sweep.grid.mode})",
        f"base point: {json.dumps(dict(sweep.grid.base), default=str)}",
        f"trial resources: {sweep.resources.describe()}; max concurrent trials {concurrency}"
        if sweep.train
        else f"trial resources: {sweep.resources.describe()} (evaluation only: no training step)",
        "trials:",
    ]
    for trial in trials:
        lines.append(f"  {trial.trial_id}  {sweep.label_of(trial.params)}")
    plan = StagePlan(sweep.stages, trials, sweep.constants, Path(options.cache_root or "."), sweep.manifest)
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
        chunking = f", chunks of {ev.chunk_size} task(s)" if ev.chunk_size else ""
        lines.append(f"evaluation: {ev.actors} actor(s), each {ev.resources.describe()}{chunking}")
    if sweep.train is not None and sweep.resources.workers:
        res = sweep.resources
        total = ", ".join(f"{v:g} {k}" for k, v in res.totals().items() if v)
        lines.append(
            f"a trial holds {total} while it trains: its driver and {res.workers} Ray Train worker(s), the workers "
            "reserved together as one placement group (all or none)"
        )
    lines.append(f"storage: {options.storage_path}/{sweep.sweep_id()}")
    return "\n".join(lines)


def requests(sweep: Sweep) -> dict[str, Resources]:
    """Every kind of request the sweep makes of Ray, by a name the error messages use."""
    needs: dict[str, Resources] = {}
    if sweep.train is not None:
        needs["a trial"] = sweep.resources
    by_resources: dict[Resources, list[str]] = {}
    for stage in sweep.stages:  # stages that ask alike are named together: one line per shortfall
        by_resources.setdefault(stage.resources, []).append(stage.name)
    for res, names in by_resources.items():
        needs[f"stage {names[0]}" if len(names) == 1 else f"each of the stages {', '.join(names)}"] = res
    if sweep.evaluation is not None:
        needs["an evaluation actor"] = sweep.evaluation.resources
    return needs


def _check_cluster(sweep: Sweep) -> None:
    """Stop before anything starts when a request can never be placed on the running cluster (names it)."""
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    check_fits(requests(sweep), ray.cluster_resources(), nodes)


def _run_name(sweep: Sweep) -> str:
    varied = [f"{a}={','.join(str(v) for v in sweep.grid.vary[a])}" for a in sweep.grid.varied_axes()]
    return f"{sweep.name}: " + (" ".join(varied) if varied else "base point")


def _parent_params(sweep: Sweep, trials: list[Trial]) -> dict[str, Any]:
    return {
        "sweep_name": sweep.name,
        "mode": sweep.grid.mode,
        "n_trials": len(trials),
        "seeds": list(sweep.grid.seeds),
        "varied_axes": sweep.grid.varied_axes(),
        **{f"base.{k}": v for k, v in sweep.grid.base.items()},
        **{f"const.{k}": v for k, v in sweep.constants.items()},
    }


def run(sweep: Sweep, options: RunOptions | None = None) -> SweepResult:
    """Run (or resume) a sweep: reuse, stages, trials, evaluations, recording, report tables."""
    start = time.perf_counter()
    options = (options or RunOptions()).resolved()
    if options.dry_run:
        print(describe(sweep, options))
        if options.ray_address is None:  # a cluster's resources are only known once joined
            where = "this machine" + (" (--num-cpus/--num-gpus)" if options.num_cpus or options.num_gpus else "")
            check_fits(requests(sweep), local_resources(options.num_cpus, options.num_gpus), where=where)
        return SweepResult(sweep.sweep_id(), [], results_frame([]), None, None, None, [], [], 0.0)
    trials = sweep.trials()
    sweep_id = sweep.sweep_id()
    sweep_dir = Path(str(options.storage_path)) / sweep_id
    log_path = sweep_dir / "sweep.log"
    labels = {t.trial_id: sweep.label_of(t.params) for t in trials}
    with output_to_log(log_path, capture=options.verbose < 2) as console:
        handler = _log_handler(options.verbose, log_path)
        guard = SecretGuard()
        for secret in sweep.secrets:
            guard.register(secret)
        recorder = None
        hint = ""
        if options.record:
            uri = resolve_tracking_uri(options.tracking_uri)
            recorder = MLflowRecorder(uri, options.experiment or sweep.name, guard)
            recorder.open(sweep_id, _run_name(sweep), _parent_params(sweep, trials), labels)
            hint = _browse_hint(uri, recorder.tracker.experiment_id, recorder.parent)
        view = LiveView(console, headline=sweep.headline, browse_hint=hint, quiet=options.verbose == 0)
        callbacks = [*([recorder] if recorder else []), *sweep.callbacks, view]
        driver = Driver(sweep, callbacks, recorder, labels)
        try:
            result = _run(sweep, options, trials, sweep_id, driver, recorder, str(log_path), start)
        except ConfigError:
            raise
        except Exception as err:  # the full traceback goes to the log file; the console gets one line
            log.exception("sweep %s stopped", sweep_id)
            raise SweepFailedError(first_line(err), str(log_path)) from err
        finally:
            driver.shutdown()
            logging.getLogger().removeHandler(handler)
            handler.close()
    return result


def _browse_hint(uri: str, experiment_id: str, parent: str | None) -> str:
    """How to open this sweep's parent run in MLflow's runs view (not the GenAI overview MLflow 3 opens on)."""
    page = f"#/experiments/{experiment_id}/runs/{parent}?workflowType=machine_learning"
    if uri.startswith(("http://", "https://")):
        return f"browse: {uri.rstrip('/')}/{page}"
    return f"browse: mlflow ui --backend-store-uri {uri}   then open http://127.0.0.1:5000/{page}"


def _log_handler(verbose: int, log_path: Path) -> logging.Handler:
    """Engine and library logs at INFO: into the sweep's log file, or on stderr when the run is verbose."""
    handler: logging.Handler = logging.StreamHandler(sys.stderr) if verbose >= 2 else logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def _run(
    sweep: Sweep,
    options: RunOptions,
    trials: list[Trial],
    sweep_id: str,
    driver: Driver,
    recorder: MLflowRecorder | None,
    log_path: str,
    start: float,
) -> SweepResult:
    done = recorder.completed(trials) if recorder is not None else {}
    reused = []
    for trial in trials:
        outcome = done.get(trial.trial_id)
        if outcome is None:
            continue
        driver.outcomes[trial.trial_id] = outcome
        if outcome.reused_from:
            reused.append(trial.trial_id)
    todo = [t for t in trials if t.trial_id not in done]
    driver.emit("on_sweep_start", SweepStart(sweep, sweep_id, trials, driver.labels, sorted(done), log_path))
    for trial_id in reused:
        driver.emit("on_trial_reused", driver.outcomes[trial_id])
    plan = StagePlan(sweep.stages, todo, sweep.constants, Path(str(options.cache_root)), sweep.manifest)
    stage_summary: StageSummary | None = None
    trained: list[str] = []
    started_ray = False
    try:
        if todo:
            started_ray = init_ray(options, sweep.secret_files)
            _check_cluster(sweep)
            if options.ray_address or sweep.preflight is not None:
                folders = [Path(str(options.storage_path)), Path(str(options.cache_root))]
                n_nodes = check_nodes(folders, sweep.preflight)
                driver.emit("on_progress", f"cluster check: {n_nodes} node(s) see the storage and pass preflight")
            stage_summary = plan.run("ray", progress=lambda line: driver.emit("on_progress", line))
            log.info(stage_summary.line())
            if sweep.train is not None:
                trained = _fit(sweep, todo, plan, options, sweep_id, driver)
            else:
                for trial in todo:
                    driver.evaluate_only(trial, plan.per_trial[trial.trial_id])
            driver.drain()
        outcomes = [driver.outcomes[t.trial_id] for t in trials if t.trial_id in driver.outcomes]
        frame = results_frame([o for o in outcomes if o.error is None])
        report: Report | None = None
        if sweep.report is not None and len(frame):
            report = sweep.report(frame, sweep.grid)
            driver.emit("on_report", report)
        result = SweepResult(
            sweep_id, outcomes, frame, report, stage_summary, recorder.parent if recorder else None,
            trained, reused, time.perf_counter() - start, log_path,
        )  # fmt: skip
        driver.emit("on_sweep_end", result)
    finally:
        if started_ray:
            import ray

            driver.shutdown()
            ray.shutdown()
    return result


def _evaluation_holds(sweep: Sweep) -> dict[str, float]:
    """What the evaluation actors hold while trials train (kept out of the trials' share of the cluster)."""
    if sweep.evaluation is None:
        return {}
    res, actors = sweep.evaluation.resources, sweep.evaluation.actors
    return {kind: actors * amount for kind, amount in res.totals().items()}


def _fit(
    sweep: Sweep, todo: list[Trial], plan: StagePlan, options: RunOptions, sweep_id: str, driver: Driver
) -> list[str]:
    """Run the Tune experiment (new or restored) and hand every finished trial to the driver."""
    import ray
    from ray import tune

    # Trials keep their Ray Train runs and files under the sweep's own folder.
    train, constants, resources = sweep.train, dict(sweep.constants), sweep.resources
    storage = str(Path(str(options.storage_path)) / sweep_id)
    assert train is not None

    # A restored Tune experiment holds every trial of its first run, including trials that finished and were
    # recorded after Tune last saved its state (a killed driver): those must not train again.
    recorded = frozenset(trial_id for trial_id, outcome in driver.outcomes.items() if outcome.error is None)

    def sweep_trial(config: dict[str, Any]) -> None:
        if config["trial"]["trial_id"] in recorded:
            tune.report({"skipped": 1})  # the driver holds its recorded outcome
            return
        run_trial(config, train, constants, storage, resources)

    trainable = tune.with_resources(sweep_trial, resources.bundle())
    experiment_path = storage
    if tune.Tuner.can_restore(experiment_path):
        log.info("resuming the Tune experiment at %s", experiment_path)
        tuner = tune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:  # a restored experiment keeps the concurrency it was started with: it is worked out only here
        limit = options.max_concurrent_trials
        if limit is None:
            limit, why = trials_that_fit(resources, ray.cluster_resources(), _evaluation_holds(sweep))
            driver.emit("on_progress", f"max concurrent trials {limit} ({why}; --max-concurrent-trials to change)")
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
                max_concurrent_trials=limit,
                reuse_actors=options.reuse_actors,
                trial_dirname_creator=trial_dirname,
                trial_name_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=sweep_id,
                storage_path=options.storage_path,
                failure_config=tune.FailureConfig(max_failures=options.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=options.checkpoints_to_keep),
                callbacks=[make_tune_callback()],
                verbose=1 if options.verbose >= 2 else 0,
            ),
        )
    driver_module.ACTIVE = driver
    try:
        grid = tuner.fit()
    finally:
        driver_module.ACTIVE = None
    # Reconcile: trials restored as already finished fire no callback; anything missed is handled here.
    for result in grid:
        config = result.config or {}
        if "trial" not in config:
            continue
        error = None if result.error is None else f"{type(result.error).__name__}: {result.error}"
        driver.trial_trained(config, result.metrics, result.checkpoint, error)
    driver.drain()
    return sorted(driver.ran)
