"""The image generator protocol, its registry, and the seeding and device rules every generator follows.

Seeding: image i is drawn from its own CPU `torch.Generator` seeded with seeds[i], so it depends only on
(prompts[i], seeds[i]) and not on the batch it was generated in; chunks of seeds can therefore be scattered over
actors and any one image regenerated alone. CPU generators also make a seed mean the same start noise on any device.
The network's arithmetic is batched, though: with one torch thread an image regenerated alone is bit-identical to its
in-batch twin (tested); with several threads, reductions split differently by batch size and a rare pixel can move
by one level of 255 (measured: 1 value of 3,072 at 2 threads).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from radio.registry import Registry


class GeneratorError(ValueError):
    """Bad generator input (kind, folder, prompts and seeds, sampling settings); the message names it."""


@runtime_checkable
class ImageGenerator(Protocol):
    """Text-to-image generation from (prompt, seed) pairs."""

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        guidance_scale: float,
        num_inference_steps: int,
        batch_size: int = 50,
    ) -> np.ndarray:
        """uint8 (n, H, W, 3) images; image i depends only on (prompts[i], seeds[i]) and the settings."""
        ...


# A factory takes the local folder, the device (None: CUDA when available) and kind-specific options.
GeneratorFactory = Callable[..., ImageGenerator]
# The built-in kinds register themselves when their module is imported, on the first lookup: `base` stays free
# of diffusers until a generator is asked for.
GENERATORS: Registry[GeneratorFactory] = Registry(
    "generator",
    field="kind",
    modules=("radio.replication.generators.sd", "radio.replication.generators.tiny"),
    error=GeneratorError,
)


def register_generator(kind: str) -> Callable[[GeneratorFactory], GeneratorFactory]:
    """Register a factory `(folder, device, **options) -> ImageGenerator` under `kind` (a decorator)."""
    return GENERATORS.register(kind)


def load_generator(kind: str, path: str | Path, device: str | None = None, **options: object) -> ImageGenerator:
    """The generator of `kind` ('tiny', 'sd', ...) loaded from the local folder `path` on `device`.

    `device` None picks CUDA when available, else CPU. `options` go to the kind's factory (e.g. `dtype` and
    `scheduler` for 'sd'). Nothing is downloaded.
    """
    factory = GENERATORS.get(kind)
    folder = Path(path)
    if not folder.is_dir():
        raise GeneratorError(f"path: generator folder {folder} not found")
    return factory(folder, device, **options)


def resolve_device(device: str | None) -> torch.device:
    """`device` as a torch.device; None means CUDA when available, else CPU."""
    from radio.device import resolve_device as resolve

    return torch.device(resolve(device, error=GeneratorError))


def check_request(
    prompts: Sequence[str], seeds: Sequence[int], guidance_scale: float, num_inference_steps: int, batch_size: int
) -> None:
    """Raise GeneratorError naming the argument that makes a generation request invalid."""
    if isinstance(prompts, str):
        raise GeneratorError("prompts: expected a sequence of strings, got one string")
    if len(prompts) != len(seeds):
        raise GeneratorError(f"seeds: {len(seeds)} seeds for {len(prompts)} prompts")
    if not all(isinstance(p, str) for p in prompts):
        raise GeneratorError("prompts: every prompt must be a string")
    if not all(isinstance(s, int | np.integer) and 0 <= int(s) < 2**63 for s in seeds):
        raise GeneratorError("seeds: every seed must be an integer in [0, 2**63)")
    if not np.isfinite(guidance_scale) or guidance_scale < 0:
        raise GeneratorError(f"guidance_scale: must be finite and >= 0, got {guidance_scale}")
    if num_inference_steps < 1:
        raise GeneratorError(f"num_inference_steps: must be >= 1, got {num_inference_steps}")
    if batch_size < 1:
        raise GeneratorError(f"batch_size: must be >= 1, got {batch_size}")


def seeded_noise(seeds: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Start noise (len(seeds), *shape): row i from a CPU generator seeded with seeds[i] alone."""
    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows) if rows else torch.empty((0, *shape))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1], (n, 3, H, W), as uint8 (n, H, W, 3)."""
    scaled = ((images.float().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
