"""Trainer callbacks of the recipe: progress (bar, loss lines, Ray metrics), Ray checkpoints, a planned stop.

Imported by the recipe only when it trains (this module imports transformers).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback

log = logging.getLogger(__name__)


class Progress(TrainerCallback):
    """tqdm bar over optimizer steps with tokens/s and ETA; loss lines through logging; metrics to Ray."""

    def __init__(self, report_to_ray: bool = False) -> None:
        self.report_to_ray = report_to_ray
        self.tokens_per_s = 0.0  # of the training loop (after model wrapping / DeepSpeed set-up), set at the end

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start the clock and the bar (a resumed run starts at its checkpoint's step)."""
        self.start = time.perf_counter()
        self.tokens0 = state.num_input_tokens_seen
        self.step0 = state.global_step
        self.loss = float("nan")
        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,
            unit="step",
            desc="finetune",
            disable=not state.is_world_process_zero,
            mininterval=1.0,
            dynamic_ncols=True,
        )

    def _rate(self, state: Any) -> float:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return (state.num_input_tokens_seen - self.tokens0) / elapsed

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Advance the bar."""
        self.bar.update(state.global_step - self.bar.n)
        self._postfix(state)

    def _postfix(self, state: Any) -> None:
        postfix = {"loss": f"{self.loss:.4f}", "tok/s": f"{self._rate(state):.0f}"}
        self.bar.set_postfix(postfix, refresh=False)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        """Log the loss line (rank 0) and report the step's metrics to Ray Train."""
        if not logs or "loss" not in logs:
            return
        self.loss = float(logs["loss"])
        self._postfix(state)
        done = state.global_step - self.step0
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (state.max_steps - state.global_step) if done else float("nan")
        if state.is_world_process_zero:
            log.info(
                "step %d/%d loss %.4f lr %.3g %.0f tokens/s eta %.0fs",
                state.global_step,
                state.max_steps,
                self.loss,
                float(logs.get("learning_rate", float("nan"))),
                self._rate(state),
                eta,
            )
        if self.report_to_ray:
            import ray.train

            ray.train.report(
                {
                    "step": state.global_step,
                    "loss": self.loss,
                    "learning_rate": float(logs.get("learning_rate", float("nan"))),
                    "epoch": float(state.epoch or 0.0),
                    "tokens_per_s": self._rate(state),
                }
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the bar and keep the loop's throughput."""
        self.bar.close()
        self.tokens_per_s = self._rate(state)


class RaySave(TrainerCallback):
    """Hands every saved Trainer checkpoint to Ray Train (rank 0's copy)."""

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Report the checkpoint just written to Ray."""
        import ray.train

        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        checkpoint = None
        if state.is_world_process_zero and folder.is_dir():
            checkpoint = ray.train.Checkpoint.from_directory(str(folder))
        metrics = {"step": state.global_step, "checkpoint_step": state.global_step}
        ray.train.report(metrics, checkpoint=checkpoint)


class StopAfter(TrainerCallback):
    """Stops (with a checkpoint) after `steps` optimizer steps: an interruption on purpose."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Save and stop once `steps` is reached."""
        if state.global_step >= self.steps:
            control.should_save = True
            control.should_training_stop = True


def recipe_callbacks(report_to_ray: bool, stop_after_steps: int | None) -> tuple[Progress, list[TrainerCallback]]:
    """The recipe's own callbacks: the progress callback (its throughput goes into the result), and all of them."""
    progress = Progress(report_to_ray)
    callbacks: list[TrainerCallback] = [progress]
    if report_to_ray:
        callbacks.append(RaySave())
    if stop_after_steps is not None:
        callbacks.append(StopAfter(stop_after_steps))
    return progress, callbacks
