"""The GPU check, one script for a session that is lent a device (one H100/H200; about 8 minutes in all).

Rows of one table:
- DeepSpeed ZeRO-2 and ZeRO-3 fine-tunes in bf16 of a ~1B-parameter Llama-shaped model built from a config
  (random weights; speed does not depend on them), through `radio.train.finetune` exactly as a sweep trial runs
  it: tokens/s of the training loop and MFU against the GPU's dense bf16 peak (`--peak-tflops`, 989 for H100 and
  H200 SXM). Training FLOPs per token: 6 x (parameters less the input embedding) + 12 x layers x hidden x seq_len
  (attention scores and values, forward and backward).
- watermarked against plain generation tokens/s at batch 64 (the same sampler on both sides; bench_generation's
  timing), on the trained ZeRO-3 model.
- detection tokens/s of the reading pass (forward, top-1, windows, tape, hashing) at V = 32,000 against the bare
  forward pass (bench_reading's timing).
- with `--sweep`, the paper-mini sweep with every device set to cuda: its wall time.

`--smoke` runs every row on CPU with a tiny model in about a minute, so that the script is tested where no GPU is.

    python bench/bench_gpu.py [--smoke] [--sweep] [--peak-tflops 989] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_generation / bench_reading, beside this file

# The ~1B shape: Llama-2's layout at TinyLlama-like width (hidden 2048, 16 layers, 5632 MLP, untied head).
FULL_SHAPE = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 16, "num_attention_heads": 16}
SMOKE_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}


@dataclass(frozen=True)
class Plan:
    """The sizes of one run of the check: the full GPU run, or the CPU smoke run."""

    device: str
    shape: dict[str, int]
    vocab: int
    seq_len: int
    batch_size: int
    train_steps: int
    gen_batch: int
    gen_prompt: int
    gen_new: int
    gen_repeats: int
    read_tokens: int
    read_batch: int

    @classmethod
    def build(cls, smoke: bool) -> Plan:
        """The GPU plan, or (smoke) the same rows at a size two CPU cores run in about a minute."""
        if smoke:
            return cls("cpu", SMOKE_SHAPE, 32000, 32, 2, 2, 64, 8, 4, 1, 2000, 8)
        return cls("cuda", FULL_SHAPE, 32000, 1024, 8, 30, 64, 32, 128, 3, 1_000_000, 32)


def build_base(out: Path, plan: Plan) -> tuple[Path, int]:
    """Save a random Llama of `plan.shape` (bf16) with a BPE tokenizer to `out`; its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from radio.train.toy import build_toy_tokenizer

    tokenizer = build_toy_tokenizer(512)  # the ids it emits are only the pad and eos the data needs
    config = LlamaConfig(
        vocab_size=plan.vocab,
        max_position_embeddings=max(2048, plan.seq_len),
        num_key_value_heads=plan.shape["num_attention_heads"],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
        **plan.shape,
    )
    torch.manual_seed(0)
    with torch.device(plan.device):  # initialise where it will run: seconds on a GPU for 1B parameters
        model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    return out, params


def train_row(stage: int, base: Path, data: Path, out: Path, plan: Plan, params: int, peak: float | None) -> dict:
    """One DeepSpeed fine-tune through the recipe; tokens/s of its loop and MFU."""
    from radio.train import FinetuneConfig, finetune

    cfg = FinetuneConfig(
        learning_rate=1e-5,
        max_steps=plan.train_steps,
        batch_size=plan.batch_size,
        max_seq_len=plan.seq_len,
        lr_schedule="constant",
        zero_stage=stage,
        precision="bf16",
        device=plan.device,  # type: ignore[arg-type]
        log_every_steps=max(1, plan.train_steps // 3),
        seed=0,
    )
    start = time.perf_counter()
    result = finetune(cfg, base, data, out)
    wall = time.perf_counter() - start
    shape = plan.shape
    embed = plan.vocab * shape["hidden_size"]
    flops_per_token = 6 * (params - embed) + 12 * shape["num_hidden_layers"] * shape["hidden_size"] * plan.seq_len
    mfu = result.tokens_per_s * flops_per_token / (peak * 1e12) if peak else None
    return {
        "row": f"train ZeRO-{stage} bf16",
        "setting": f"{params / 1e6:,.0f}M params, seq {plan.seq_len}, batch {plan.batch_size}, {result.steps} steps",
        "tokens_per_s": result.tokens_per_s,
        "vs": f"MFU {100 * mfu:.1f}%" if mfu is not None else "MFU n/a (no GPU peak)",
        "wall_s": wall,
        "note": f"final loss {result.final_loss:.3f}" if result.final_loss is not None else "",
    }


def generation_row(model: Any, plan: Plan) -> dict:
    """Watermarked against plain sampling at `plan.gen_batch`, alternating runs, median of the repeats."""
    import torch
    from bench_generation import tokens_per_s

    from radio.watermark import Watermark, WatermarkConfig, plain_generation_kwargs

    vocab = model.config.vocab_size
    model.generation_config.eos_token_id = None
    prompts = torch.randint(3, vocab, (plan.gen_batch, plan.gen_prompt), generator=torch.Generator().manual_seed(0))
    prompts = prompts.to(model.device)
    wm = Watermark(WatermarkConfig("kgw", k=2, gamma=0.25, delta=3.0), key=b"bench-gpu", vocab_size=vocab)
    sides = {"plain": plain_generation_kwargs(temperature=0.8, top_p=0.95), "watermarked": wm.generation_kwargs()}
    start = time.perf_counter()
    for kwargs in sides.values():  # warm-up: kernels and the allocator
        tokens_per_s(model, prompts[:4], 4, kwargs, seed=0)
    speeds: dict[str, list[float]] = {side: [] for side in sides}
    for repeat in range(plan.gen_repeats):
        for side, kwargs in sides.items():
            speeds[side].append(tokens_per_s(model, prompts, plan.gen_new, kwargs, seed=repeat)[0])
    plain, marked = (statistics.median(speeds[s]) for s in ("plain", "watermarked"))
    return {
        "row": "generate watermarked",
        "setting": f"batch {plan.gen_batch}, {plan.gen_new} new tokens, KGW k=2, V={vocab}",
        "tokens_per_s": marked,
        "vs": f"plain {plain:,.0f} tok/s, ratio {marked / plain:.3f}",
        "wall_s": time.perf_counter() - start,
        "note": f"median of {plan.gen_repeats}",
    }


def reading_row(model: Any, plan: Plan) -> dict:
    """The open-model reading pass at the model's vocabulary against the bare forward pass of the same batches."""
    import numpy as np
    from bench_reading import bare_forward, reading_test

    from radio.detect.open_model import pack_texts
    from radio.watermark import Watermark, WatermarkConfig

    vocab = model.config.vocab_size
    wm = Watermark(WatermarkConfig("kgw", k=2, gamma=0.25), key=b"bench-gpu", vocab_size=vocab)
    rng = np.random.default_rng(0)
    texts = [rng.integers(0, vocab, 400) for _ in range(max(1, plan.read_tokens // 400))]
    n_tokens = sum(t.size for t in texts)
    seq_len = min(plan.seq_len, 512)
    chunks, _, _ = pack_texts(texts, seq_len, None)
    start = time.perf_counter()
    bare_forward(model, chunks[: plan.read_batch], plan.read_batch, model.device)  # warm-up
    reading_test(model, wm, texts[:4], seq_len, plan.read_batch)
    bare = bare_forward(model, chunks, plan.read_batch, model.device)
    full, _, log10_p, n_scored = reading_test(model, wm, texts, seq_len, plan.read_batch)
    return {
        "row": "detect (reading pass)",
        "setting": f"V={vocab}, {n_tokens:,} tokens, seq {seq_len}, batch {plan.read_batch}",
        "tokens_per_s": n_tokens / full,
        "vs": f"bare forward {n_tokens / bare:,.0f} tok/s, overhead {100 * (full / bare - 1):+.1f}%",
        "wall_s": time.perf_counter() - start,
        "note": f"{n_scored:,} scored, log10 p {log10_p:.2f}",
    }


def sweep_row(work: Path, smoke: bool) -> dict:
    """The paper-mini sweep with every device cuda (with --smoke: the smoke preset on CPU); its wall time."""
    import yaml

    sys.path.insert(0, str(REPO))
    from sweeps.engine.presets import load_sections

    preset, device = ("smoke", "cpu") if smoke else ("paper-mini", "cuda")
    # The preset's merged sections with only the devices moved (a section given in an extending file would
    # replace the parent's whole section).
    _, sections = load_sections(preset, REPO / "sweeps" / "audits" / "radioactivity" / "presets")
    for section in ("generate", "finetune", "detect"):
        sections.setdefault(section, {})["device"] = device
    sections["name"] = f"bench-{preset}-{device}"
    spec = work / f"{preset}-{device}.yaml"
    spec.write_text(yaml.safe_dump(sections, sort_keys=False))
    command = [
        sys.executable,
        str(REPO / "sweeps" / "ablation.py"),
        "--preset",
        str(spec),
        "--storage-path",
        str(work / "ray"),
        "--cache-root",
        str(work / "cache"),
        "--tracking-uri",
        f"sqlite:///{work / 'mlflow.db'}",
        "-q",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=work)
    wall = time.perf_counter() - start
    (work / "sweep.log").write_text(done.stdout + done.stderr)
    return {
        "row": f"sweep {preset}",
        "setting": f"device {device}",
        "tokens_per_s": float("nan"),
        "vs": "ok" if done.returncode == 0 else f"FAILED rc={done.returncode} (see {work / 'sweep.log'})",
        "wall_s": wall,
        "note": "",
    }


def print_table(rows: list[dict], device_name: str, total_s: float) -> None:
    """The one table of the check."""
    print(f"GPU check on {device_name}; {total_s:.0f} s in all")
    print(f"{'row':<24} {'tokens/s':>12} {'wall s':>7}  {'against':<44} {'setting':<52} note")
    for r in rows:
        tps = "" if r["tokens_per_s"] != r["tokens_per_s"] else f"{r['tokens_per_s']:,.0f}"
        print(f"{r['row']:<24} {tps:>12} {r['wall_s']:>7.1f}  {r['vs']:<44} {r['setting']:<52} {r['note']}")


def main() -> None:
    """Run the rows in order (each failure is a row, not an abort), print the table, write rows.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU: checks the script, times nothing")
    parser.add_argument("--sweep", action="store_true", help="also run the paper-mini sweep with device cuda")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100/H200 SXM: 989)")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temp folder)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    plan = Plan.build(args.smoke)
    if plan.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA device is visible; --smoke runs the rows on CPU")
    if plan.device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    device_name = torch.cuda.get_device_name(0) if plan.device == "cuda" else "cpu (smoke)"
    peak = args.peak_tflops if plan.device == "cuda" else None
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    from radio.train.toy import build_toy_dataset

    start = time.perf_counter()
    rows: list[dict] = []
    base, params = build_base(work / "base", plan)
    answer = plan.seq_len - 16
    data = build_toy_dataset(
        work / "data",
        n=plan.batch_size * plan.train_steps,
        prompt_len=16,
        answer_len=answer,
        vocab_low=3,
        vocab_high=plan.vocab,
    )
    trained = None
    for stage in (2, 3):
        out = work / f"zero{stage}"
        try:
            rows.append(train_row(stage, base, data, out, plan, params, peak))
            trained = out
        except Exception as err:  # one failed row must not hide the others
            rows.append(_failed(f"train ZeRO-{stage} bf16", err))
    from radio.models import load_model

    model = load_model(trained or base, dtype=torch.bfloat16, device=plan.device)
    for name, row in (("generate watermarked", generation_row), ("detect (reading pass)", reading_row)):
        try:
            rows.append(row(model, plan))
        except Exception as err:
            rows.append(_failed(name, err))
    del model
    if args.sweep:
        rows.append(sweep_row(work, args.smoke))
    total = time.perf_counter() - start
    print_table(rows, device_name, total)
    (work / "rows.json").write_text(json.dumps({"device": device_name, "total_s": total, "rows": rows}, indent=2))
    if any(r["vs"].startswith("FAILED") for r in rows):
        raise SystemExit(1)


def _failed(name: str, err: Exception) -> dict:
    return {
        "row": name,
        "setting": "",
        "tokens_per_s": float("nan"),
        "vs": f"FAILED {type(err).__name__}",
        "wall_s": 0.0,
        "note": str(err).splitlines()[0][:120] if str(err) else "",
    }


if __name__ == "__main__":
    main()
