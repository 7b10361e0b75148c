"""The `tiny` generator: a tiny text-to-image checkpoint, sampled with DDIM (eta 0) and classifier-free guidance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from radio.replication.generators.base import (
    GeneratorError,
    check_request,
    register_generator,
    resolve_device,
    seeded_noise,
    to_uint8,
)
from radio.replication.t2i.model import CheckpointError, TinyT2I


class TinyGenerator:
    """DDIM sampling from a `TinyT2I` checkpoint; the empty caption is the unconditional branch of guidance.

    DDIM with eta 0 draws no noise after the start noise, so an image depends only on its prompt and seed.
    """

    def __init__(self, model: TinyT2I, device: torch.device) -> None:
        """Wrap an in-memory model (already on `device`); use `TinyGenerator.load` for a checkpoint folder."""
        from diffusers import DDIMScheduler

        self.model = model
        self.device = device
        self.model.unet.eval()
        self.model.text_encoder.eval()
        # Same noise schedule as training; `leading` spacing ends the DDIM trajectory on t=0.
        self.scheduler = DDIMScheduler.from_config(model.noise_scheduler.config)
        with torch.no_grad():
            self._empty = model.encode_text(model.tokenize([""]).to(device))

    @classmethod
    def load(cls, folder: str | Path, device: str | None = None) -> TinyGenerator:
        """Load the checkpoint folder written by `train_tiny_t2i` on `device` (None: CUDA if available)."""
        resolved = resolve_device(device)
        try:
            model = TinyT2I.load(folder, device=resolved)
        except CheckpointError as err:
            raise GeneratorError(f"path: {err}") from err
        return cls(model, resolved)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        guidance_scale: float,
        num_inference_steps: int,
        batch_size: int = 50,
    ) -> np.ndarray:
        """uint8 (n, size, size, 3) images, image i from (prompts[i], seeds[i]); guidance 1 skips the empty branch."""
        check_request(prompts, seeds, guidance_scale, num_inference_steps, batch_size)
        size = self.model.config.image_size
        out = np.empty((len(prompts), size, size, 3), dtype=np.uint8)
        for start in range(0, len(prompts), batch_size):
            stop = min(start + batch_size, len(prompts))
            out[start:stop] = self._batch(prompts[start:stop], seeds[start:stop], guidance_scale, num_inference_steps)
        return out

    def _batch(self, prompts: Sequence[str], seeds: Sequence[int], guidance: float, steps: int) -> np.ndarray:
        size = self.model.config.image_size
        n = len(prompts)
        cond = self.model.encode_text(self.model.tokenize(prompts).to(self.device))
        guided = guidance != 1.0
        # Both branches in one UNet call: unconditional rows first, then the conditional ones.
        context = torch.cat([self._empty.expand(n, -1, -1), cond]) if guided else cond
        self.scheduler.set_timesteps(steps, device=self.device)
        x = seeded_noise(seeds, (3, size, size)).to(self.device) * self.scheduler.init_noise_sigma
        for t in self.scheduler.timesteps:
            model_in = torch.cat([x, x]) if guided else x
            eps = self.model.unet(model_in, t, encoder_hidden_states=context).sample
            if guided:
                uncond, conditional = eps.chunk(2)
                eps = uncond + guidance * (conditional - uncond)
            x = self.scheduler.step(eps, t, x, eta=0.0).prev_sample
        return to_uint8(x)


@register_generator("tiny")
def _load_tiny(folder: Path, device: str | None, **options: object) -> TinyGenerator:
    if options:
        raise GeneratorError(f"options: the tiny generator takes none, got {sorted(options)}")
    return TinyGenerator.load(folder, device)
