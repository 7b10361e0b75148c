"""Images per second of the replication generators, batched against one image at a time, side by side.

Two generators, each loaded by path exactly as the audit loads them: `tiny` (a freshly initialised tiny
text-to-image checkpoint at the default TinyT2IConfig; throughput does not depend on the weights) and `sd` (a tiny
random StableDiffusionPipeline saved with `save_pretrained`, i.e. the real pipeline class and code path). For each,
runs alternate (batched, single, batched, ...) and the median of `--repeats` is reported, so that load from other
processes hits both sides alike. With `--train-steps`, also the seconds per training step of the tiny model at
`--train-batch` on random 32x32 images.

    python bench/bench_replication_generation.py [--images 100] [--steps 30] [--guidance 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from radio.replication.generators import ImageGenerator, load_generator
from radio.replication.generators.random_sd import build_random_sd_pipeline
from radio.replication.t2i import TinyT2I, TinyT2IConfig, train_tiny_t2i

WORDS = "a painting of almond blossom by vincent sky sea red square astronaut moon flag the with in".split()


def images_per_s(gen: ImageGenerator, prompts: list[str], batch_size: int, steps: int, guidance: float) -> float:
    """One timed `generate` call over all prompts (seeds 0..n-1) in batches of `batch_size`."""
    start = time.perf_counter()
    gen.generate(prompts, list(range(len(prompts))), guidance_scale=guidance, num_inference_steps=steps,
                 batch_size=batch_size)  # fmt: skip
    return len(prompts) / (time.perf_counter() - start)


def train_seconds_per_step(steps: int, batch: int, images: int, out: Path) -> float:
    """Seconds per optimizer step of the default tiny model on random images (first two steps excluded)."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (images, 32, 32, 3), dtype=np.uint8)
    captions = [" ".join(rng.choice(WORDS, 12)) for _ in range(images)]
    times: list[float] = []
    last = [time.perf_counter()]

    def tick(step: int, loss: float) -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    cfg = TinyT2IConfig(train_steps=steps, batch_size=batch, log_every_steps=1)
    train_tiny_t2i(captions, data, out, cfg, seed=0, checkpoint_steps=[], progress=tick)
    return statistics.median(times[2:-1] or times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="images per timed run")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--single-images", type=int, default=10, help="images in the one-at-a-time runs")
    parser.add_argument("--steps", type=int, default=30, help="DDIM steps")
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--train-steps", type=int, default=0, help="also time this many training steps")
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    prompts = [" ".join(rng.choice(WORDS, 10)) for _ in range(args.images)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny_dir = TinyT2I.create(TinyT2IConfig(), prompts, seed=0).save(Path(tmp) / "tiny", extra={"step": 0})
        sd_dir = build_random_sd_pipeline(Path(tmp) / "sd", seed=0)
        for kind, folder in (("tiny", tiny_dir), ("sd", sd_dir)):
            gen = load_generator(kind, folder, device="cpu")
            images_per_s(gen, prompts[:2], 2, 2, args.guidance)  # warm-up: allocation and dispatch set-up
            speeds: dict[str, list[float]] = {"batched": [], "single": []}
            for _ in range(args.repeats):
                speeds["batched"].append(images_per_s(gen, prompts, args.batch_size, args.steps, args.guidance))
                single = prompts[: args.single_images]
                speeds["single"].append(images_per_s(gen, single, 1, args.steps, args.guidance))
            batched, single_rate = (statistics.median(speeds[s]) for s in ("batched", "single"))
            rows.append(
                {
                    "generator": kind,
                    "batch": args.batch_size,
                    "steps": args.steps,
                    "batched_img_s": round(batched, 2),
                    "single_img_s": round(single_rate, 2),
                    "s_per_img_batched": round(1 / batched, 4),
                    "ratio": round(batched / single_rate, 2),
                }
            )
        if args.train_steps:
            per_step = train_seconds_per_step(args.train_steps, args.train_batch, 3500, Path(tmp) / "train")
            rows.append({"generator": "tiny (training)", "batch": args.train_batch, "s_per_step": round(per_step, 3)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
