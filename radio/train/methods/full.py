"""Full fine-tuning: every weight of B is trained; the Trainer saves the whole model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radio.train.config import FinetuneConfig
from radio.train.methods import METHODS


@METHODS.register("full")
class Full:
    """The `full` method: no wrapping; the saved model is the trained model."""

    name = "full"

    def wrap(self, model: Any, cfg: FinetuneConfig, base_model_dir: Path) -> Any:
        """The model to train: the base model itself."""
        return model

    def save(self, trainer: Any, staging: Path) -> None:
        """Save the trained weights into `staging` (a collective call under ZeRO-3)."""
        trainer.save_model(str(staging))

    def finalize(self, base_model_dir: Path, staging: Path) -> None:
        """Nothing to do on rank 0 after the save."""

    def adapter_dir(self, out_dir: Path) -> Path | None:
        """Full fine-tunes keep no adapter."""
        return None
