"""Fine-tuning throughput (tokens/s) of the tiny presets on this machine: full vs LoRA, with vs without DeepSpeed.

Every cell is one `radio.train.finetune` run of `--steps` optimizer steps on random prompt/answer token ids
(prompt 32 + answer 96 + EOS = 129 tokens per row, no padding). Throughput is measured between the end of step
`--warmup` and the last step (non-padding tokens through the model per second), so model loading, DeepSpeed
engine set-up and the final save are not counted; they are reported separately as "overhead". The models are
freshly initialised radio presets (throughput does not depend on the weights) with a 2,048-row vocabulary.
Cells run in a rotated order `--repeats` times and the median is reported, so that load from other processes
hits all cells alike. On a machine shared with other jobs use `--threads 1`: OpenMP threads that wait for a busy
core make 2 threads several times slower than 1.

    python bench/bench_finetune.py [--presets tiny-0.5m tiny-1m tiny-4m] [--stages none 0 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from radio.models import PRESETS, build_model, count_parameters
from radio.train import FinetuneConfig, finetune
from radio.train.toy import build_toy_tokenizer

VOCAB = 2048
PROMPT, ANSWER = 32, 96


class StepClock(TrainerCallback):
    """Wall time and tokens seen at the end of step `warmup` and of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.marks: dict[str, tuple[float, int]] = {}

    def on_step_end(self, args, state, control, **kwargs):
        now = (time.perf_counter(), int(state.num_input_tokens_seen))
        if state.global_step == self.warmup:
            self.marks["start"] = now
        self.marks["end"] = now

    def tokens_per_s(self) -> float:
        (t0, n0), (t1, n1) = self.marks["start"], self.marks["end"]
        return (n1 - n0) / (t1 - t0)


def build_inputs(root: Path, preset: str, n_rows: int) -> tuple[Path, Path]:
    """A base model folder of `preset` (with the toy tokenizer) and a random prompt/answer dataset."""
    from datasets import Dataset

    tokenizer = build_toy_tokenizer(VOCAB)
    model = build_model(preset, VOCAB, seed=0, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    base = root / preset
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    rng = random.Random(0)
    data = Dataset.from_dict(
        {
            "prompt_ids": [[rng.randrange(3, VOCAB) for _ in range(PROMPT)] for _ in range(n_rows)],
            "answer_ids": [[rng.randrange(3, VOCAB) for _ in range(ANSWER)] for _ in range(n_rows)],
            "watermarked": [False] * n_rows,
        }
    )
    data_dir = root / f"{preset}-data"
    data.save_to_disk(str(data_dir))
    return base, data_dir


def main() -> None:
    """Run the grid and print one row per (preset, method, DeepSpeed stage)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny-0.5m", "tiny-1m", "tiny-4m"], choices=sorted(PRESETS))
    parser.add_argument("--methods", nargs="+", default=["full", "lora"], choices=["full", "lora"])
    parser.add_argument("--stages", nargs="+", default=["none", "0", "2"], help="'none' = no DeepSpeed, or 0-3")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    cells = [(p, m, st) for p in args.presets for m in args.methods for st in args.stages]
    runs: dict[tuple[str, str, str], list[dict]] = {cell: [] for cell in cells}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs = {p: build_inputs(root, p, n_rows=args.batch_size * args.steps) for p in args.presets}
        params = {p: count_parameters(build_model(p, VOCAB, seed=0)) for p in args.presets}
        for repeat in range(args.repeats):
            shift = repeat * len(cells) // max(args.repeats, 1)
            for preset, method, stage in cells[shift:] + cells[:shift]:
                cfg = FinetuneConfig(
                    method=method,
                    learning_rate=1e-3,
                    max_steps=args.steps,
                    batch_size=args.batch_size,
                    max_seq_len=PROMPT + ANSWER + 1,
                    zero_stage=None if stage == "none" else int(stage),
                    device="cpu",
                    log_every_steps=args.steps,
                    lora_target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
                )
                clock = StepClock(args.warmup)
                out = root / f"{preset}-{method}-{stage}-{repeat}"
                start = time.perf_counter()
                result = finetune(cfg, *inputs[preset], out, callbacks=[clock])
                wall = time.perf_counter() - start
                rate = clock.tokens_per_s()
                measured = (args.steps - args.warmup) * args.batch_size * (PROMPT + ANSWER + 1) / rate
                run = {
                    "preset": preset,
                    "params": params[preset],
                    "method": method,
                    "deepspeed": "none" if stage == "none" else f"ZeRO-{stage}",
                    "trainable": result.trainable_params,
                    "repeat": repeat,
                    "tokens_per_s": round(rate, 1),
                    "overhead_s": round(wall - measured, 2),
                }
                runs[(preset, method, stage)].append(run)
                print(json.dumps(run), flush=True)
                shutil.rmtree(out, ignore_errors=True)
    rows = []
    for cell in cells:
        row = dict(runs[cell][0])
        row.pop("repeat")
        row["tokens_per_s"] = round(statistics.median(r["tokens_per_s"] for r in runs[cell]), 1)
        row["overhead_s"] = round(statistics.median(r["overhead_s"] for r in runs[cell]), 2)
        rows.append(row)

    print(
        f"\nfine-tuning throughput (median of {args.repeats}), batch {args.batch_size} x {PROMPT + ANSWER + 1} "
        f"tokens, {args.threads} threads, steps {args.warmup + 1}..{args.steps} timed; "
        f"load average {os.getloadavg()[0]:.1f} at the end\n"
    )
    stages = ["none" if s == "none" else f"ZeRO-{s}" for s in args.stages]
    header = f"{'preset':<10} {'params':>9} {'method':<5} {'trainable':>9} " + " ".join(f"{s:>14}" for s in stages)
    print(header + "   (tokens/s; overhead s)")
    for preset in args.presets:
        for method in args.methods:
            group = [r for r in rows if r["preset"] == preset and r["method"] == method]
            line = f"{preset:<10} {group[0]['params']:>9,} {method:<5} {group[0]['trainable']:>9,} "
            line += " ".join(f"{c['tokens_per_s']:>7,.0f} ({c['overhead_s']:>4.1f})" for c in group)
            print(line)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
