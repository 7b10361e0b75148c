"""The `sd` generator: a diffusers `StableDiffusionPipeline` loaded from a local folder (no hub, no safety checker)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from radio.replication.generators.base import GeneratorError, check_request, register_generator, resolve_device

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
Scheduler = Literal["ddim", "pipeline"]


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """`dtype` by name; None means float16 on CUDA (bfloat16 where the GPU supports it) and float32 on CPU."""
    if dtype is None:
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in DTYPES:
        raise GeneratorError(f"dtype: {dtype!r} is not one of {sorted(DTYPES)}")
    if device.type == "cpu" and dtype == "float16":
        raise GeneratorError("dtype: float16 is not supported on CPU; use float32 or bfloat16")
    return DTYPES[dtype]


class StableDiffusionGenerator:
    """Batched generation through a local `StableDiffusionPipeline`; one CPU `torch.Generator` per image.

    The pipeline draws image i's start latents (and any sampler noise) from generator i, so an image does not
    depend on its batch. `scheduler="ddim"` swaps in DDIM built from the pipeline's own scheduler config (the
    sampler the tiny generator uses, deterministic after the start noise); "pipeline" keeps the saved one.
    """

    def __init__(self, pipeline: Any, device: torch.device) -> None:
        """Wrap a loaded pipeline (already on `device`); use `StableDiffusionGenerator.load` for a folder."""
        self.pipeline = pipeline
        self.device = device
        self.pipeline.set_progress_bar_config(disable=True)

    @classmethod
    def load(
        cls,
        folder: str | Path,
        device: str | None = None,
        dtype: str | None = None,
        scheduler: Scheduler = "ddim",
    ) -> StableDiffusionGenerator:
        """Load the pipeline folder (a `save_pretrained` layout) from local files only, on `device` in `dtype`."""
        from diffusers import DDIMScheduler, StableDiffusionPipeline

        folder = Path(folder)
        if not (folder / "model_index.json").is_file():
            raise GeneratorError(f"path: {folder} has no model_index.json (not a diffusers pipeline folder)")
        if scheduler not in ("ddim", "pipeline"):
            raise GeneratorError(f"scheduler: {scheduler!r} is not 'ddim' or 'pipeline'")
        resolved = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, resolved)
        pipeline = StableDiffusionPipeline.from_pretrained(
            str(folder),
            local_files_only=True,
            safety_checker=None,
            requires_safety_checker=False,
            dtype=torch_dtype,
        )
        if scheduler == "ddim":
            pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
        return cls(pipeline.to(resolved), resolved)

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        guidance_scale: float,
        num_inference_steps: int,
        batch_size: int = 50,
    ) -> np.ndarray:
        """uint8 (n, H, W, 3) images at the pipeline's native size, image i from (prompts[i], seeds[i])."""
        check_request(prompts, seeds, guidance_scale, num_inference_steps, batch_size)
        chunks = []
        for start in range(0, len(prompts), batch_size):
            stop = min(start + batch_size, len(prompts))
            # CPU generators: a seed gives the same start latents on any device (diffusers moves them over).
            generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[start:stop]]
            with torch.no_grad():
                out = self.pipeline(
                    prompt=list(prompts[start:stop]),
                    generator=generators,
                    guidance_scale=guidance_scale,
                    num_inference_steps=num_inference_steps,
                    output_type="np",
                )
            chunks.append((np.clip(out.images, 0.0, 1.0) * 255.0).round().astype(np.uint8))
        if not chunks:
            size = self.pipeline.unet.config.sample_size * self.pipeline.vae_scale_factor
            return np.empty((0, size, size, 3), dtype=np.uint8)
        return np.concatenate(chunks)


@register_generator("sd")
def _load_sd(
    folder: Path, device: str | None, dtype: str | None = None, scheduler: Scheduler = "ddim"
) -> StableDiffusionGenerator:
    return StableDiffusionGenerator.load(folder, device, dtype=dtype, scheduler=scheduler)
