"""Training progress of the tiny text-to-image model: step, loss, steps per second and ETA, as metrics and a line.

`TrainingProgress` is fed the `(step, loss)` pairs that `train_tiny_t2i` reports every `log_every_steps` steps;
it measures the rate over the steps run in this process (a resumed run does not count the steps it restored) and
hands back the metrics (for `ray.train.report`) and one console line (for the log and the sweep's live view).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from radio.progress import format_seconds


@dataclass
class TrainingProgress:
    """Rate and ETA of a training run of `total` steps that starts (or resumes) at `first_step`."""

    total: int
    first_step: int = 0
    name: str = "tiny t2i"
    clock: Callable[[], float] = time.perf_counter

    def __post_init__(self) -> None:
        self.started = self.clock()

    def update(self, step: int, loss: float) -> tuple[dict[str, float], str]:
        """Metrics (`step`, `loss`, `steps_per_s`, `eta_s`) and the line `name: step S/T loss L R steps/s ETA E`."""
        elapsed = max(self.clock() - self.started, 1e-9)
        done = step - self.first_step
        rate = done / elapsed if done > 0 else float("nan")
        eta = (self.total - step) / rate if done > 0 else float("nan")
        metrics = {"step": float(step), "loss": float(loss), "steps_per_s": rate, "eta_s": eta}
        line = f"{self.name}: step {step}/{self.total} loss {loss:.4f} {rate:.2f} steps/s ETA {format_seconds(eta)}"
        return metrics, line
