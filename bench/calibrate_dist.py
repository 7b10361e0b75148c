"""Null calibration of the distribution-based open-model tests (`open-dist`, `open-ref`): FPR at 0.05 / 0.01 over keys.

For each configuration (default: V = 2,048 k = 1 and V = 32,000 k = 2, KGW and Aaronson) a clean model reads text
and is tested under --keys random keys; the table gives the false-positive rates beside the binomial 99.9% interval
of the nominal rate, and the mean and sd of the standardised statistic (T - E T) / sd (0 and about 1 under H0).
The Chernoff bound is conservative: rates below nominal are expected; rates above the interval's upper end are a bug.

Clean models: a Llama-style model built from a preset with random weights and a sharpened LM head (uneven,
key-free distributions), or a trained checkpoint (`--model DIR --data MIX`: its `--split` answers; the rho = 0 model
and the base model of a sweep are clean). `--fresh-text` also runs the correct-key case: for every key, fresh text
watermarked with that key (uniform base model, KGW) read by the clean model (V = 2,048 k = 1 only; slower).

`--reference` tests `open-ref` (B's excess over a reference model R, summed per window) instead: with random models
`--reference noisy` makes R from B's LM head plus key-free noise, untied from its input embeddings (a reference
close to B, as Alice's A or Bob's base is to a fine-tuned B); with `--model`, `--reference DIR` is a model folder
(Alice's A of the same sweep, say).

    python bench/calibrate_dist.py [--keys 300] [--tokens 4000] [--top-m 64] [--reference noisy --sharpen 8]
    python bench/calibrate_dist.py --model CKPT --data MIX [--split heldout] [--k 1] [--reference A_DIR] [--signed]

`--signed` gives the reference-calibrated test signed weights p_B - p_R (open-ref's `excess: signed`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from radio.detect.open_model import ReadingPass, read_texts
from radio.detect.open_model_dist import open_model_dist_test, window_mass
from radio.detect.reference import reference_probs
from radio.detect.result import derive_key
from radio.models import build_model
from radio.watermark import Watermark, WatermarkConfig


def interval(alpha: float, n: int) -> tuple[float, float]:
    """The binomial 99.9% interval of the false-positive rate at level `alpha` over `n` keys."""
    return float(stats.binom.ppf(0.0005, n, alpha) / n), float(stats.binom.ppf(0.9995, n, alpha) / n)


def row(label: str, results: list) -> str:
    """One table row: FPRs with their intervals, z mean / sd, smallest log10 p."""
    p = np.array([r.pvalue for r in results])
    z = np.array([(r.detection.statistic - r.detection.h0["mean"]) / r.detection.h0["sd"] for r in results])
    n = len(results)
    cells = []
    for alpha in (0.05, 0.01):
        low, high = interval(alpha, n)
        rate = float((p <= alpha).mean())
        flag = "" if rate <= high else " FAIL"
        cells.append(f"{rate:.3f} [{low:.3f}, {high:.3f}]{flag}")
    low10 = min(r.log10_pvalue for r in results)
    return f"| {label} | {n} | {cells[0]} | {cells[1]} | {z.mean():+.3f} | {z.std():.3f} | {low10:.2f} |"


def watermark(scheme: str, k: int, vocab: int, key: bytes | str) -> Watermark:
    """The paper's KGW / Aaronson parameters (gamma 0.25, delta 2) on the given domain."""
    return Watermark(WatermarkConfig(scheme, k=k, gamma=0.25, delta=2.0), key=key, vocab_size=vocab)


def kgw_text(wm: Watermark, n_texts: int, length: int, seed: int) -> list[list[int]]:
    """KGW text over a uniform base model (any k): what a clean model reads under the correct key."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.empty((n_texts, length), dtype=torch.int64)
    tokens[:, : wm.k] = torch.randint(0, wm.vocab_size, (n_texts, wm.k), generator=gen)
    for t in range(wm.k, length):
        green = wm.green_mask(tokens[:, t - wm.k : t]).to(torch.float32)
        tokens[:, t] = torch.multinomial(torch.softmax(wm.config.delta * green, dim=1), 1, generator=gen)[:, 0]
    return tokens.tolist()


def clean_model(vocab: int, preset: str, sharpen: float) -> torch.nn.Module:
    """Random weights from a preset, LM head scaled by `sharpen` (peaked distributions, no key anywhere)."""
    model = build_model(preset, vocab_size=vocab, seed=0).eval()
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(sharpen)
    return model


def noisy_reference(model: torch.nn.Module, seed: int = 1, scale: float = 0.3) -> torch.nn.Module:
    """R: `model` with its LM head plus key-free Gaussian noise (`scale` times the head's sd), untied from the input."""
    import copy

    reference = copy.deepcopy(model)
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        noise = torch.randn(head.shape, generator=torch.Generator().manual_seed(seed))
        reference.get_output_embeddings().weight = torch.nn.Parameter(head + scale * head.std() * noise)
    return reference


SIGNED = {False: "", True: " (signed)"}


def wrong_keys(
    wm: Watermark, reading: ReadingPass, n_keys: int, reference: torch.Tensor | None = None, signed: bool = False
) -> list:
    """The test under `n_keys` keys derived from Alice's (one aggregation for all); `open-ref` with a reference
    (`signed`: weights p_B - p_R of either sign)."""
    weighting = "mean" if reference is None else "sum"
    mass = window_mass(wm, reading, reference=reference, weighting=weighting, signed=signed)
    return [
        open_model_dist_test(wm.with_key(derive_key(b"calibration", i)), reading, mass=mass, curve_points=0)
        for i in range(n_keys)
    ]


def main() -> None:
    """Print the calibration table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--tokens", type=int, default=4000, help="tokens read per configuration (random models)")
    parser.add_argument("--top-m", type=int, default=64)
    parser.add_argument("--preset", default="tiny-0.5m")
    parser.add_argument("--sharpen", type=float, default=40.0, help="LM head scale of the random models")
    parser.add_argument("--fresh-text", action="store_true", help="also the correct key on fresh text per key")
    parser.add_argument("--reference", help="open-ref: `noisy` (random models) or a model folder (with --model)")
    parser.add_argument("--signed", action="store_true", help="open-ref with signed weights p_B - p_R")
    parser.add_argument("--model", type=Path, help="a trained clean checkpoint instead of random models")
    parser.add_argument("--data", type=Path, help="its mix folder (with --model)")
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--k", type=int, default=1, help="window of the trained model's data (with --model)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| setting | keys | FPR at 0.05 [99.9% int.] | FPR at 0.01 [99.9% int.] | mean z | sd z | min log10 p |")
    print("|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    if args.model is not None:
        from radio.detect.records import load_records
        from radio.models.loading import load_model, load_tokenizer, model_vocab_size

        model, tokenizer = load_model(args.model, device="cpu"), load_tokenizer(args.model)
        vocab = model_vocab_size(model)
        answers = load_records(args.data / args.split).answers
        sep = tokenizer.eos_token_id
        reading = read_texts(model, answers, args.k, seq_len=256, separator_id=sep, top_m=args.top_m)
        ref = None
        if args.reference is not None:
            r_model = load_model(Path(args.reference), device="cpu")
            ref = reference_probs(r_model, answers, reading, separator_id=sep, pad_id=tokenizer.pad_token_id or 0)
        test = "open-dist" if ref is None else f"open-ref{SIGNED[args.signed]} vs {Path(args.reference).name}"
        for scheme in ("kgw", "aaronson"):
            results = wrong_keys(watermark(scheme, args.k, vocab, b"calibration"), reading, args.keys, ref, args.signed)
            d = results[0].detection
            label = (
                f"{test}: {args.model.name} V={vocab} k={args.k} {scheme} ({d.n_eligible} positions, "
                f"{d.n_scored} windows)"
            )
            print(row(label, results), flush=True)
    else:
        for vocab, k in ((2048, 1), (32000, 2)):
            model = clean_model(vocab, args.preset, args.sharpen)
            texts = kgw_text(watermark("kgw", k, vocab, b"alice"), max(1, args.tokens // 200), 200, seed=vocab)
            reading = read_texts(model, texts, k, seq_len=256, top_m=args.top_m)
            ref = None if args.reference is None else reference_probs(noisy_reference(model), texts, reading)
            test = "open-dist" if ref is None else f"open-ref{SIGNED[args.signed]} vs noisy copy"
            for scheme in ("kgw", "aaronson"):
                results = wrong_keys(watermark(scheme, k, vocab, b"alice"), reading, args.keys, ref, args.signed)
                d = results[0].detection
                label = (
                    f"{test}: random {args.preset} x{args.sharpen:g} V={vocab} k={k} {scheme} "
                    f"({d.n_eligible} pos., {d.n_scored} windows, {d.h0['n_terms']:.0f} terms)"
                )
                print(row(label, results), flush=True)
        if args.fresh_text:
            model = clean_model(2048, args.preset, args.sharpen)
            r_model = None if args.reference is None else noisy_reference(model)
            results = []
            for i in range(args.keys):
                wm = watermark("kgw", 1, 2048, f"fresh-{i}")
                texts = kgw_text(wm, 8, 100, seed=i)
                reading = read_texts(model, texts, 1, seq_len=256, top_m=args.top_m)
                ref = None if r_model is None else reference_probs(r_model, texts, reading)
                weighting = "mean" if ref is None else "sum"
                mass = window_mass(wm, reading, reference=ref, weighting=weighting, signed=args.signed)
                results.append(open_model_dist_test(wm, reading, mass=mass, curve_points=0))
            test = "open-dist" if r_model is None else f"open-ref{SIGNED[args.signed]} vs noisy copy"
            print(row(f"{test}: random V=2048 k=1 kgw, correct key, fresh text per key", results), flush=True)
    print(f"\n{time.perf_counter() - start:.0f} s; top_m {args.top_m}; Chernoff bound (conservative)")


if __name__ == "__main__":
    main()
