"""What a trial, a stage task or an evaluation actor asks Ray for, and whether the cluster can ever give it.

A trial with `workers` > 0 is two requests: its Tune function trial (the driver, `cpu`/`gpu`) and, once it
builds its `TorchTrainer`, the Ray Train worker group. Ray Train V2 reserves that group as ONE placement group of
`workers` bundles (`cpu_per_worker`/`gpu_per_worker` each, strategy PACK), so a trial's workers start together
or not at all; a trial that cannot get them waits without holding any of them. `trials_that_fit` counts the
driver and every worker, so that Tune does not start drivers whose groups cannot be placed; `shortfalls` finds a
request that no amount of waiting would place (more than the cluster, or a bundle larger than every node).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sweeps.engine.errors import ConfigError


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

    def bundles(self) -> list[tuple[str, dict[str, float]]]:
        """Each single request and its resources: the process itself, then one bundle per Ray Train worker."""
        process = {"CPU": self.cpu, "GPU": self.gpu}
        out = [("the process", process)]
        if self.workers:
            out.append(("a Ray Train worker", {"CPU": self.cpu_per_worker, "GPU": self.gpu_per_worker}))
        return out

    def describe(self) -> str:
        text = f"{self.cpu:g} CPU" + (f" + {self.gpu:g} GPU" if self.gpu else "")
        if self.workers:
            per = f"{self.cpu_per_worker:g} CPU" + (f" + {self.gpu_per_worker:g} GPU" if self.gpu_per_worker else "")
            text += f"; {self.workers} Ray Train worker(s) x ({per})"
        return text


def trials_that_fit(
    trial: Resources, cluster: Mapping[str, float], kept: Mapping[str, float] | None = None
) -> tuple[int, str]:
    """How many trials run at once when each holds `trial.totals()` of `cluster` minus `kept` (what evaluation
    actors hold), at least 1; and a line that says how it was worked out.

    The limit matters because a trial driver asks Tune for a sliver of a CPU and its Ray Train workers for the
    rest: left unlimited, Tune would start every trial driver at once and each would wait, holding memory and a
    process, for workers that cannot be placed.
    """
    kept = kept or {}
    fits: list[tuple[int, str]] = []
    for kind, need in trial.totals().items():
        if need <= 0:
            continue
        free = max(0.0, float(cluster.get(kind, 0.0)) - float(kept.get(kind, 0.0)))
        # a small tolerance: 2 - 0.5 over 0.75 is 2, not 1.9999
        fits.append((int(free / need + 1e-9), f"{free:g} {kind} free / {need:g} {kind} per trial{_split(trial, kind)}"))
    if not fits:
        return 1, "a trial needs no CPU or GPU"
    count, why = min(fits)
    return max(1, count), why


def _split(trial: Resources, kind: str) -> str:
    """How a trial's share of `kind` is made up, when it has Ray Train workers: `(0.01 + 2 workers x 0.74)`."""
    if not trial.workers:
        return ""
    own, per = (trial.cpu, trial.cpu_per_worker) if kind == "CPU" else (trial.gpu, trial.gpu_per_worker)
    return f" ({own:g} + {trial.workers} worker{'s' if trial.workers > 1 else ''} x {per:g})"


def shortfalls(
    needs: Mapping[str, Resources],
    cluster: Mapping[str, float],
    nodes: Sequence[Mapping[str, float]] = (),
) -> list[str]:
    """Why each request in `needs` (by name: "trial", "stage bob", ...) can never be placed on `cluster`.

    One line per problem, naming the request and the resource: a trial's total (driver and all its workers,
    which Ray Train places together) above the cluster's, or one bundle (a process or one worker) larger than
    the largest of `nodes` (a bundle never spans nodes). Empty when everything fits.
    """
    lines = []
    for name, res in needs.items():
        for kind, need in res.totals().items():
            have = float(cluster.get(kind, 0.0))
            if need > have + 1e-9:
                lines.append(f"{name} needs {need:g} {kind} ({res.describe()}) but the cluster has {have:g} {kind}")
        if not nodes:
            continue
        for what, bundle in res.bundles():
            for kind, need in bundle.items():
                largest = max(float(node.get(kind, 0.0)) for node in nodes)
                if need > largest + 1e-9 and need <= float(cluster.get(kind, 0.0)) + 1e-9:
                    lines.append(f"{name}: {what} needs {need:g} {kind} but the largest node has {largest:g} {kind}")
    return lines


def check_fits(
    needs: Mapping[str, Resources],
    cluster: Mapping[str, float],
    nodes: Sequence[Mapping[str, float]] = (),
    where: str = "the cluster",
) -> None:
    """Raise ConfigError (one message, every shortfall, the resources of `where`) when a request can never fit."""
    lines = shortfalls(needs, cluster, nodes)
    if lines:
        have = ", ".join(f"{float(cluster.get(k, 0.0)):g} {k}" for k in ("CPU", "GPU"))
        raise ConfigError(
            f"resources: the preset asks for more than {where} has ({have}):\n  "
            + "\n  ".join(lines)
            + "\nrun it on a cluster that has them (--ray-address), or lower the preset's resources section"
        )


def local_resources(num_cpus: int | None = None, num_gpus: int | None = None) -> dict[str, float]:
    """What a new local Ray instance on this machine would have (the --num-cpus / --num-gpus given, else counted)."""
    gpus = num_gpus
    if gpus is None:
        try:
            import torch

            gpus = torch.cuda.device_count()
        except ImportError:  # the engine runs without torch; then no GPU is counted
            gpus = 0
    return {"CPU": float(num_cpus if num_cpus is not None else os.cpu_count() or 1), "GPU": float(gpus)}
