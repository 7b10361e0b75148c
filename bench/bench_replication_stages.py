"""Per-stage costs of the replication default, side by side in one process, as ratios to one training step.

The CPUs this runs on are shared, so absolute seconds mean little; every stage is timed here in one process, with
runs alternating where it matters, and reported both in seconds and as a multiple of one default training step.
Stages: the synthetic corpus draw (the default's, 3,210 images), loading its images into one uint8 array (the
training data path), one training step of the tiny model (the default recipe and the variants given by
`--variants`), one generated image (DDIM, guidance 1, the default's batch), the pixel embedding and threshold
scoring of those generations, and the memorization detector's score of one prompt.
The "default budget" line multiplies each unit cost by the count of the preset given (`--preset-steps`, ...).

    python bench/bench_replication_stages.py [--threads 2] [--train-steps 8] [--variants batch_size=32 ...]

The recipe before 2026-12-06's speed-up, beside the default: `--variants attention_kernel=sdpa,fused_adamw=false`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _parse_variant(text: str) -> dict[str, Any]:
    """`batch_size=32,fused_adamw=false` as a dict of TinyT2IConfig overrides (bools, ints, floats or strings)."""
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
            continue
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


def train_step_seconds(captions: list[str], images: np.ndarray, config: Any, steps: int, out: Path) -> float:
    """Median seconds per optimizer step of `config` on the real training data (first two steps excluded)."""
    from radio.replication.t2i import train_tiny_t2i

    times: list[float] = []
    last = [time.perf_counter()]

    def tick(step: int, loss: float) -> None:
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    cfg = replace(config, train_steps=steps, log_every_steps=1, warmup_steps=1)
    train_tiny_t2i(captions, images, out, cfg, seed=0, checkpoint_steps=[], progress=tick)
    return statistics.median(times[2:] or times)


def main() -> None:
    """Time every stage and print one row per stage (seconds and ratio to the default training step)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the training worker's CPUs)")
    parser.add_argument("--train-steps", type=int, default=8, help="timed training steps per variant")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds over the training variants")
    parser.add_argument("--variants", nargs="*", default=[], help="TinyT2IConfig overrides, e.g. batch_size=32")
    parser.add_argument("--gen-images", type=int, default=50, help="images per generation timing (one batch)")
    parser.add_argument("--sampler-steps", type=int, nargs="*", default=[30], help="DDIM steps to time")
    parser.add_argument("--preset-steps", type=int, default=1000, help="training steps of the preset budgeted")
    parser.add_argument("--preset-images", type=int, default=450, help="generated images of the preset budgeted")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from radio.replication.corpus import load_corpus
    from radio.replication.embedders import get_embedder
    from radio.replication.generators import load_generator
    from radio.replication.synthetic import SyntheticCorpusConfig, build_synthetic_corpus
    from radio.replication.t2i import TinyT2I, TinyT2IConfig
    from radio.replication.thresholds import cluster_thresholds, score_generations
    from sweeps.audits.replication.config import load_preset

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seconds = _timed(lambda: build_synthetic_corpus(root / "corpus", SyntheticCorpusConfig(), seed=0))
        rows.append({"stage": "corpus draw (default, 3,210 images)", "count": 1, "s": seconds})
        corpus = load_corpus(root / "corpus")
        # "default" is the tiny preset's recipe (16 pixels since 2026-12); variants override it.
        base = replace(TinyT2IConfig.from_dict(dict(load_preset("tiny").model.t2i)), threads=args.threads)
        loaded: dict[str, np.ndarray] = {}
        seconds = _timed(lambda: loaded.setdefault("images", corpus.load_images(size=base.image_size)))
        images = loaded["images"]
        rows.append({"stage": "load training images (PNG -> array)", "count": 1, "s": seconds})
        np.save(root / "images.npy", images)
        seconds = _timed(lambda: np.load(root / "images.npy"))
        rows.append({"stage": "np.load training array (worker)", "count": 1, "s": seconds})
        captions = corpus.captions

        variants = {"default": base, **{v: replace(base, **_parse_variant(v)) for v in args.variants}}
        per_step: dict[str, list[float]] = {name: [] for name in variants}
        sized = {base.image_size: images}  # a variant may change image_size: the corpus is resized for it once
        for cfg in variants.values():
            if cfg.image_size not in sized:
                sized[cfg.image_size] = corpus.load_images(size=cfg.image_size)
        for r in range(args.rounds):  # alternate, so that load from other processes hits every variant alike
            for name, cfg in variants.items():
                out = root / f"train-{r}-{abs(hash(name))}"
                data = sized[cfg.image_size]
                per_step[name].append(train_step_seconds(captions, data, cfg, args.train_steps, out))
        for name, times in per_step.items():
            rows.append({"stage": f"training step ({name})", "count": 1, "s": statistics.median(times)})

        model = TinyT2I.create(base, captions, seed=0)
        folder = model.save(root / "model", extra={"step": 0})
        generator = load_generator("tiny", folder, device="cpu")
        prompts = ["almond blossom orchard Elise Varnhagen"] * args.gen_images
        seeds = list(range(args.gen_images))
        generator.generate(prompts[:2], seeds[:2], guidance_scale=1.0, num_inference_steps=2)  # warm-up
        generated = None
        for steps in args.sampler_steps:
            holder: dict[str, np.ndarray] = {}

            def gen(steps: int = steps, holder: dict[str, np.ndarray] = holder) -> None:
                holder["x"] = generator.generate(
                    prompts, seeds, guidance_scale=1.0, num_inference_steps=steps, batch_size=args.gen_images
                )

            seconds = _timed(gen) / args.gen_images
            generated = holder["x"]
            rows.append({"stage": f"generate one image (DDIM {steps}, guidance 1)", "count": 1, "s": seconds})
        assert generated is not None
        embedder = get_embedder("pixel")
        members = embedder.embed(images[:200])
        thresholds = {k: t.value for k, t in cluster_thresholds(embedder.embed(images[:600]), np.arange(200)).items()}
        seconds = _timed(lambda: score_generations(embedder.embed(generated), members, thresholds))
        rows.append({"stage": "embed + score one image", "count": 1, "s": seconds / len(generated)})
        try:
            from radio.replication.memorization import TinyNoiseDifference, memorization_scores

            scorer = TinyNoiseDifference(model)
            seconds = _timed(lambda: memorization_scores(scorer, prompts[:4], seeds=list(range(8)), steps=5))
            rows.append({"stage": "memorization score one prompt (8 seeds x 5 steps)", "count": 1, "s": seconds / 4})
        except ImportError:
            pass

    unit = next(r["s"] for r in rows if r["stage"] == "training step (default)")
    for row in rows:
        row["x_train_step"] = round(row["s"] / unit, 3)
        row["s"] = round(row["s"], 4)
    gen_unit = next(r["s"] for r in rows if r["stage"].startswith("generate one image"))
    budget = {
        "training": args.preset_steps * unit,
        "generation": args.preset_images * gen_unit,
        "embedding": args.preset_images * next(r["s"] for r in rows if r["stage"].startswith("embed")),
        "corpus+load": sum(r["s"] for r in rows if r["stage"].startswith(("corpus", "load"))),
    }
    rows.append({"stage": "budget (s) at these unit costs", **{k: round(v, 1) for k, v in budget.items()}})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
