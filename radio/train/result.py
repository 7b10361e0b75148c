"""What a fine-tune leaves behind: the output folder's layout, `FinetuneResult`, and `FinetuneError`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

METRICS_FILE = "train_metrics.json"  # written last: a folder without it is incomplete
RUN_FILE = "finetune_run.json"  # the config and input digests a folder's checkpoints belong to
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"
STAGING_DIR = ".staging"


class FinetuneError(ValueError):
    """An input of the fine-tune (model folder, dataset, output folder) is unusable; the message names it."""


@dataclass(frozen=True)
class FinetuneResult:
    """Outcome of a fine-tune: where the checkpoint is, and what training measured.

    `completed` is False only when the run was stopped early on purpose (`stop_after_steps`): then the model
    in `checkpoint_dir` is not written yet and a later call resumes. `tokens_per_s` (non-padding tokens per
    second of the training loop, without model loading and DeepSpeed set-up) and `wall_time_s` (model loading
    to final save) cover the last session, after a resume only the resumed part; `train_tokens` counts
    non-padding tokens over the whole run.
    """

    checkpoint_dir: Path
    adapter_dir: Path | None
    metrics_path: Path | None
    completed: bool
    method: str
    steps: int
    max_steps: int
    resumed_from_step: int
    train_loss: float | None
    loss_curve: tuple[tuple[int, float], ...]
    train_tokens: int
    tokens_per_s: float
    wall_time_s: float
    trainable_params: int
    total_params: int
    n_examples: int
    n_dropped: int
    n_watermarked: int | None

    @property
    def final_loss(self) -> float | None:
        """Mean of the last (up to) 3 logged losses."""
        tail = [loss for _, loss in self.loss_curve[-3:]]
        return sum(tail) / len(tail) if tail else None

    def counts(self) -> dict[str, Any]:
        """Numbers for the stage manifest."""
        return {
            "steps": self.steps,
            "train_tokens": self.train_tokens,
            "tokens_per_s": round(self.tokens_per_s, 1),
            "final_loss": self.final_loss,
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "n_examples": self.n_examples,
            "n_dropped": self.n_dropped,
            "n_watermarked": self.n_watermarked,
        }

    def to_json(self) -> dict[str, Any]:
        """JSON view with paths relative to the checkpoint folder (the folder may be moved as a whole)."""
        data = asdict(self)
        data["checkpoint_dir"] = "."
        data["adapter_dir"] = ADAPTER_DIR if self.adapter_dir is not None else None
        data["metrics_path"] = METRICS_FILE
        data["loss_curve"] = [list(p) for p in self.loss_curve]
        data["final_loss"] = self.final_loss
        return data

    @classmethod
    def load(cls, folder: str | Path) -> FinetuneResult:
        """Read the result of a completed fine-tune from its folder."""
        folder = Path(folder).resolve()
        data = json.loads((folder / METRICS_FILE).read_text())
        result = data["result"]
        fields = {k: result[k] for k in cls.__dataclass_fields__ if k in result}
        fields["checkpoint_dir"] = folder
        fields["adapter_dir"] = folder / ADAPTER_DIR if result.get("adapter_dir") else None
        fields["metrics_path"] = folder / METRICS_FILE
        fields["loss_curve"] = tuple((int(s), float(v)) for s, v in result["loss_curve"])
        return cls(**fields)


def loss_decreased(result: FinetuneResult, window: int = 3) -> bool:
    """Whether the mean of the last `window` logged losses is below the mean of the first `window`."""
    losses = [loss for _, loss in result.loss_curve]
    if len(losses) < 2:
        return False
    k = max(1, min(window, len(losses) // 2))
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    return math.isfinite(last) and last < first
