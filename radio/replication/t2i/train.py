"""Training of the tiny text-to-image model: DDPM (v or epsilon target), min-SNR weighting, caption dropout, AdamW.

`train_tiny_t2i` needs no Ray. It writes a self-contained checkpoint folder `step-NNNNNN/` at each requested step
(the last step always) and a resumable state `resume/` (the same layout plus optimizer, schedule and random
state) beside them; a later call with the same `out_dir` continues from `resume/`, bit for bit the run it would
have been, since every random draw (batch, timestep, noise, caption dropout) comes from one saved generator.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf

from radio.replication.t2i.config import TinyT2IConfig
from radio.replication.t2i.model import TinyT2I

log = logging.getLogger(__name__)

RESUME_DIR = "resume"
STATE_FILE = "training_state.pt"
RESULT_FILE = "train_result.json"


class TrainingDataError(ValueError):
    """Captions and images do not form a training set (shape, dtype, count)."""


def checkpoint_dir(out_dir: str | Path, step: int) -> Path:
    """The folder of the checkpoint saved at `step` under `out_dir`."""
    return Path(out_dir) / f"step-{step:06d}"


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, H, W, 3) images as float (n, 3, H, W) in [-1, 1], the range the UNet is trained on."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def check_training_data(captions: Sequence[str], images: np.ndarray, config: TinyT2IConfig) -> None:
    """Raise TrainingDataError unless `images` is uint8 (len(captions), image_size, image_size, 3)."""
    size = config.image_size
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise TrainingDataError(f"images: expected a uint8 numpy array, got {getattr(images, 'dtype', type(images))}")
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise TrainingDataError(f"images: expected shape (n, {size}, {size}, 3), got {images.shape}")
    if len(captions) != len(images):
        raise TrainingDataError(f"captions: {len(captions)} captions for {len(images)} images")
    if len(captions) == 0:
        raise TrainingDataError("captions: empty training set")
    if not all(isinstance(c, str) for c in captions):
        raise TrainingDataError("captions: every caption must be a string")


def _lr_factor(step: int, config: TinyT2IConfig) -> float:
    # Linear warm-up, then cosine decay to a tenth: a tiny model trained from scratch at lr 1e-3 needs the
    # warm-up to keep attention stable, and the decay sharpens the final checkpoint.
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.train_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def _min_snr_weights(
    alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, gamma: float, prediction_type: str
) -> torch.Tensor:
    # Min-SNR-gamma (Hang et al. 2023): the x0-space weight min(SNR, gamma) expressed for the network's target,
    # min(SNR, gamma) / SNR for epsilon and min(SNR, gamma) / (SNR + 1) for v; it damps the easy low-noise steps
    # that otherwise dominate the loss.
    alpha_bar = alphas_cumprod[timesteps]
    snr = alpha_bar / (1.0 - alpha_bar)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / snr if prediction_type == "epsilon" else clipped / (snr + 1.0)


def _save_resume(model: TinyT2I, out_dir: Path, state: dict[str, Any]) -> Path:
    """Write `resume/` atomically (a complete new folder replaces the old one)."""
    final = out_dir / RESUME_DIR
    tmp = out_dir / f"{RESUME_DIR}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save(tmp, extra={"step": state["step"]})
    torch.save(state, tmp / STATE_FILE)
    old = out_dir / f"{RESUME_DIR}.old"
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final


def validate_checkpoint_steps(checkpoint_steps: Sequence[int], config: TinyT2IConfig) -> list[int]:
    """Sorted unique checkpoint steps with the last step added; ValueError names a step out of [1, train_steps]."""
    steps = sorted({int(s) for s in checkpoint_steps} | {config.train_steps})
    bad = [s for s in steps if not 1 <= s <= config.train_steps]
    if bad:
        raise ValueError(f"checkpoint_steps: {bad} outside [1, train_steps={config.train_steps}]")
    return steps


def train_tiny_t2i(
    captions: Sequence[str],
    images: np.ndarray,
    out_dir: Path,
    config: TinyT2IConfig,
    seed: int,
    checkpoint_steps: Sequence[int],
    progress: Callable[[int, float], None] | None = None,
    *,
    device: str = "cpu",
    on_checkpoint: Callable[[int, Path, Path, float], None] | None = None,
    stop_after_steps: int | None = None,
) -> dict[str, Any]:
    """Train the tiny model on (captions[i], images[i]) pairs and save checkpoints at `checkpoint_steps`.

    `images` is uint8 (n, image_size, image_size, 3). A checkpoint folder `out_dir/step-NNNNNN` is written at every
    step of `checkpoint_steps` and at `config.train_steps`; each loads on its own (`TinyT2I.load`, or the `tiny`
    generator). When `out_dir/resume` holds the state of an earlier, interrupted call, training continues from it.
    `progress(step, loss)` is called every `config.log_every_steps` steps with the mean loss since the last call;
    `on_checkpoint(step, checkpoint_folder, resume_folder, loss)` after each save (the Ray worker reports there).
    `stop_after_steps` stops early after saving a resumable state (an interruption on purpose, for tests).

    Returns a JSON-able dict: `checkpoints` ({step: folder}), `final_loss` (mean loss over the last logging
    window), `losses` ([step, mean loss] per logging window), `parameters`, `seconds`, `seconds_per_step`,
    `completed` (False when stopped early). The same dict is written to `out_dir/train_result.json` on completion.
    """
    check_training_data(captions, images, config)
    steps_to_save = validate_checkpoint_steps(checkpoint_steps, config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    old_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(captions, images, out_dir, config, seed, steps_to_save, progress, device, on_checkpoint,
                      stop_after_steps)  # fmt: skip
    finally:
        torch.set_num_threads(old_threads)


@dataclass
class _Run:
    """What a training run carries from step to step, and what `resume/` saves of it."""

    model: TinyT2I
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator
    step: int = 0
    losses: list[list[float]] = field(default_factory=list)
    window: list[float] = field(default_factory=list)  # losses since the last log line (a resume logs the same)
    elapsed_before: float = 0.0

    def state(self, seed: int, config: TinyT2IConfig, seconds: float) -> dict[str, Any]:
        """The resumable state saved beside the weights."""
        return {
            "step": self.step,
            "seed": seed,
            "config": config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "losses": self.losses,
            "window": self.window,
            "seconds": seconds,
        }


def _start_or_resume(out_dir: Path, captions: Sequence[str], config: TinyT2IConfig, seed: int, device: str) -> _Run:
    """A fresh model and optimizer, or the ones `out_dir/resume` saved (same seed and config, or ValueError)."""
    resume = out_dir / RESUME_DIR
    state: dict[str, Any] | None = None
    if (resume / STATE_FILE).is_file():
        model = TinyT2I.load(resume, device="cpu")
        state = torch.load(resume / STATE_FILE, map_location="cpu", weights_only=False)
        if state["seed"] != seed or state["config"] != config.to_dict():
            raise ValueError(f"{resume}: resume state is from another seed or config; use a fresh out_dir")
        log.info("tiny t2i: resuming from step %d", state["step"])
    else:
        model = TinyT2I.create(config, captions, seed)
    model.to(device)
    model.unet.train()
    model.text_encoder.train()
    params = [*model.unet.parameters(), *model.text_encoder.parameters()]
    optimizer = torch.optim.AdamW(
        params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=config.fused_adamw or None
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config))
    run = _Run(model, params, optimizer, schedule, torch.Generator().manual_seed(seed))
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        run.generator.set_state(state["generator"])
        run.step = int(state["step"])
        run.losses = state["losses"]
        run.elapsed_before = float(state["seconds"])
        run.window = list(state.get("window", []))
    return run


def _step_loss(
    run: _Run, data: torch.Tensor, ids: torch.Tensor, empty_ids: torch.Tensor, config: TinyT2IConfig, device: str
) -> torch.Tensor:
    """The min-SNR-weighted loss of one batch; every random draw (rows, caption dropout, flip, noise, timestep)
    comes from the run's generator in this order, which a resume relies on."""
    model, generator, batch = run.model, run.generator, config.batch_size
    idx = torch.randint(len(data), (batch,), generator=generator)
    x0 = data[idx]
    batch_ids = ids[idx].clone()
    drop = torch.rand(batch, generator=generator) < config.caption_dropout
    batch_ids[drop] = empty_ids
    if config.horizontal_flip:
        flip = torch.rand(batch, generator=generator) < 0.5
        x0[flip] = x0[flip].flip(-1)
    noise = torch.randn(x0.shape, generator=generator)
    t = torch.randint(config.num_train_timesteps, (batch,), generator=generator)
    x0, noise, t, batch_ids = x0.to(device), noise.to(device), t.to(device), batch_ids.to(device)
    noisy = model.noise_scheduler.add_noise(x0, noise, t)
    context = model.encode_text(batch_ids)
    pred = model.unet(noisy, t, encoder_hidden_states=context).sample
    target = noise if config.prediction_type == "epsilon" else model.noise_scheduler.get_velocity(x0, noise, t)
    per_sample = nnf.mse_loss(pred.float(), target, reduction="none").mean(dim=(1, 2, 3))
    alphas_cumprod = model.noise_scheduler.alphas_cumprod.to(device)
    weights = _min_snr_weights(alphas_cumprod, t, config.min_snr_gamma, config.prediction_type)
    return (per_sample * weights).mean()


def _train(
    captions: Sequence[str],
    images: np.ndarray,
    out_dir: Path,
    config: TinyT2IConfig,
    seed: int,
    steps_to_save: list[int],
    progress: Callable[[int, float], None] | None,
    device: str,
    on_checkpoint: Callable[[int, Path, Path, float], None] | None,
    stop_after_steps: int | None,
) -> dict[str, Any]:
    run = _start_or_resume(out_dir, captions, config, seed, device)
    model = run.model
    # Everything the loop indexes is prepared once: the whole tokenised corpus and the images as one tensor.
    data = images_to_tensor(images)
    ids = model.tokenize(captions)
    empty_ids = model.tokenize([""])[0]
    start = time.perf_counter()
    checkpoints = {s: str(checkpoint_dir(out_dir, s)) for s in steps_to_save if s <= run.step}
    while run.step < config.train_steps:
        loss = _step_loss(run, data, ids, empty_ids, config, device)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.params, config.max_grad_norm)
        run.optimizer.step()
        run.schedule.step()
        run.step += 1
        step = run.step
        run.window.append(loss.item())
        if step % config.log_every_steps == 0 or step == config.train_steps:
            mean = sum(run.window) / len(run.window)
            run.losses.append([step, mean])
            run.window = []
            if progress is not None:
                progress(step, mean)
        stopping = stop_after_steps is not None and step >= stop_after_steps and step < config.train_steps
        if step in steps_to_save or stopping:
            loss_now = run.losses[-1][1] if run.losses else float(loss)
            seconds = run.elapsed_before + time.perf_counter() - start
            folder = None
            if step in steps_to_save:
                folder = model.save(checkpoint_dir(out_dir, step), extra={"step": step, "loss": loss_now})
                checkpoints[step] = str(folder)
            resume_folder = _save_resume(model, out_dir, run.state(seed, config, seconds))
            if on_checkpoint is not None and folder is not None:
                on_checkpoint(step, folder, resume_folder, loss_now)
            if stopping:
                break
    step, losses, elapsed_before = run.step, run.losses, run.elapsed_before
    seconds = elapsed_before + time.perf_counter() - start
    result = {
        "checkpoints": {str(s): p for s, p in sorted(checkpoints.items())},
        "final_loss": losses[-1][1] if losses else float("nan"),
        "losses": losses,
        "parameters": model.parameter_count(),
        "seconds": round(seconds, 3),
        "seconds_per_step": round(seconds / max(step, 1), 4),
        "steps": step,
        "completed": step >= config.train_steps,
    }
    if result["completed"]:
        (out_dir / RESULT_FILE).write_text(json.dumps(result, indent=2))
    return result
