"""What a trial, a stage task or an evaluation actor asks Ray for."""

from __future__ import annotations

from collections.abc import Mapping
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
        fits.append((int(free / need + 1e-9), f"{free:g} {kind} free / {need:g} {kind} per trial"))
    if not fits:
        return 1, "a trial needs no CPU or GPU"
    count, why = min(fits)
    return max(1, count), why
