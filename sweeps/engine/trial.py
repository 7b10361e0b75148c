"""The trial runtime: what a sweep's training function receives inside its Ray Tune trial, and the Tune entry."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.engine.resources import Resources

RESULT_KEY = "sweep_result"  # the JSON-encoded return value of `train`, in the trial's final Tune report
CHECKPOINT_KEY = "checkpoint_path"  # a `train` return key: the folder the evaluation actors load


@dataclass
class TrialContext:
    """What a trial function gets: its params, stage folders by stage name, sweep constants, Tune/Train helpers."""

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


def run_trial(
    config: dict[str, Any],
    train: Callable[[TrialContext], Mapping[str, Any] | None],
    constants: dict[str, Any],
    storage_path: str,
    resources: Resources,
) -> None:
    """The body of the Tune function trainable: build the context, train, report the result as the last report."""
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


def trial_dirname(trial: Any) -> str:
    """Tune folder and display name of a trial: its deterministic id."""
    return str(trial.config["trial"]["trial_id"])
