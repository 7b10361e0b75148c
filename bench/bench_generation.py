"""Generation throughput (tokens/s) of the tiny presets with and without the watermark, side by side.

Both runs sample with the same temperature and top-p through radio's logits processors; the only difference is
the watermark (keyed hashing of the last k tokens into a green list over the whole vocabulary at every step).
Runs alternate (plain, watermarked, plain, ...) and the median of `--repeats` is reported, so that load from other
processes hits both sides alike. Two clocks: wall time, and CPU time of this process (user + system, all threads).
On a shared machine the wall clock also counts waiting for a core, so the CPU ratio is the steadier one. Every row
generates exactly `--new-tokens` tokens (no eos). One torch thread by default: the data stage generates with one
thread for models under 20M parameters (`radio.data.generate.cpu_threads`).

The weights matter through the sampler. A freshly initialised model (`--presets`) has near-uniform logits: top-p
keeps ~1,900 of 2,048 tokens on the plain side and ~800 on the watermarked side, and torch's sort and multinomial
cost a little more on the watermarked distribution. `--model DIR` times a trained local model instead (any folder
`from_pretrained` reads, e.g. a pre-trained base model from the stage cache, `$RADIO_CACHE/base/<id>`).

    python bench/bench_generation.py [--presets tiny-0.5m tiny-1m tiny-4m] [--model DIR ...] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from radio.models import PRESETS, build_model, count_parameters
from radio.watermark import Watermark, WatermarkConfig, plain_generation_kwargs


def tokens_per_s(model, prompts: torch.Tensor, new_tokens: int, kwargs: dict, seed: int) -> tuple[float, float]:
    """One timed `generate` call: generated tokens per wall-clock second, and per CPU second of this process."""
    torch.manual_seed(seed)
    start, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        out = model.generate(
            input_ids=prompts,
            attention_mask=torch.ones_like(prompts),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            eos_token_id=None,
            pad_token_id=0,
            **kwargs,
        )
    elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    tokens = (out.shape[1] - prompts.shape[1]) * prompts.shape[0]
    return tokens / elapsed, tokens / cpu_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=sorted(PRESETS, key=lambda n: PRESETS[n].params_at_2048))
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=25)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", nargs="*", default=[], help="local model folders, timed after the presets")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--scheme", default="kgw", choices=["kgw", "aaronson"])
    parser.add_argument("--k", nargs="+", type=int, default=[1, 2], help="watermark windows (1: the tiny presets')")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [(name, lambda name=name: build_model(name, vocab_size=args.vocab_size, seed=0)) for name in args.presets]
    models += [(Path(path).name, lambda path=path: AutoModelForCausalLM.from_pretrained(path)) for path in args.model]
    rows = []
    for (name, load), k in itertools.product(models, args.k):
        model = load().eval()
        model.generation_config.eos_token_id = None
        vocab_size = model.config.vocab_size
        generator = torch.Generator().manual_seed(0)
        prompts = torch.randint(3, vocab_size, (args.batch_size, args.prompt_tokens), generator=generator)
        # A fixed benchmark key: nothing secret is at stake here. A new Watermark per row: no warm cache carried over.
        config = WatermarkConfig(args.scheme, k=k, gamma=0.25, delta=3.0)
        wm = Watermark(config, key=b"bench-key", vocab_size=vocab_size)
        sides = {"plain": plain_generation_kwargs(temperature=0.8, top_p=0.95), "watermarked": wm.generation_kwargs()}
        for kwargs in sides.values():  # warm-up: first calls pay allocation and dispatch set-up
            tokens_per_s(model, prompts[:4], 4, kwargs, seed=0)
        speeds: dict[str, list[float]] = {side: [] for side in sides}
        cpu_speeds: dict[str, list[float]] = {side: [] for side in sides}
        for repeat in range(args.repeats):
            for side, kwargs in sides.items():
                wall, cpu = tokens_per_s(model, prompts, args.new_tokens, kwargs, seed=repeat)
                speeds[side].append(wall)
                cpu_speeds[side].append(cpu)
        plain, marked = (statistics.median(speeds[s]) for s in ("plain", "watermarked"))
        plain_cpu, marked_cpu = (statistics.median(cpu_speeds[s]) for s in ("plain", "watermarked"))
        rows.append(
            {
                "preset": name,
                "k": k,
                "vocab": vocab_size,
                "params": count_parameters(model),
                "plain_tok_s": round(plain, 1),
                "watermarked_tok_s": round(marked, 1),
                "ratio": round(marked / plain, 3),
                "plain_cpu_tok_s": round(plain_cpu, 1),
                "watermarked_cpu_tok_s": round(marked_cpu, 1),
                "cpu_ratio": round(marked_cpu / plain_cpu, 3),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"threads={torch.get_num_threads()} batch={args.batch_size} prompt={args.prompt_tokens} "
        f"new={args.new_tokens} scheme={args.scheme} repeats={args.repeats} (median)"
    )
    print(
        f"{'model':<18} {'k':>2} {'vocab':>6} {'params':>10} {'plain tok/s':>12} {'wm tok/s':>10} {'wm/plain':>9} "
        f"{'plain CPU tok/s':>16} {'wm CPU tok/s':>13} {'CPU wm/plain':>13}"
    )
    for row in rows:
        print(
            f"{row['preset']:<18} {row['k']:>2} {row['vocab']:>6} {row['params']:>10,} {row['plain_tok_s']:>12,.0f} "
            f"{row['watermarked_tok_s']:>10,.0f} {row['ratio']:>9.3f} {row['plain_cpu_tok_s']:>16,.0f} "
            f"{row['watermarked_cpu_tok_s']:>13,.0f} {row['cpu_ratio']:>13.3f}"
        )


if __name__ == "__main__":
    main()
