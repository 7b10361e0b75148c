"""Detection throughput: radio's vectorised tape + hashing vs a faithful re-implementation of the reference.

The reference algorithm (three_bricks / radioactive-watermark detector, DESIGN.md §2) seeds a CPU generator and
draws `torch.randperm(V)` once per scored token, V = 32000. Both run on the same token stream in this process;
the script prints absolute tokens/s of each and their ratio (goal: >= 1000x).

    python bench/bench_detection.py [--tokens 1000000] [--reference-tokens 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from radio import Watermark, WatermarkConfig, detect_tokens

VOCAB = 32000
GAMMA = 0.25
SALT = 35317


def reference_detect(sequences: list[list[int]], seed: int, k: int) -> tuple[int, int]:
    """The reference loop: per text, per token, a Python tape and one randperm(V) per scored token."""
    green, scored = 0, 0
    seen: set[tuple[int, ...]] = set()
    rng = torch.Generator()
    for tokens in sequences:
        for pos in range(k, len(tokens)):
            window = tokens[pos - k : pos]
            key = (*window, tokens[pos])
            if key in seen:
                continue
            seen.add(key)
            s = seed
            for token in window:
                s = (s * SALT + token) % (2**64 - 1)
            rng.manual_seed(s)
            greenlist = torch.randperm(VOCAB, generator=rng)[: int(GAMMA * VOCAB)]
            green += int((greenlist == tokens[pos]).any())
            scored += 1
    return green, scored


def _median_seconds(run: object, repeats: int) -> float:
    """Median wall time of `repeats` calls of `run` (the same statistic for both sides)."""
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    """Run both detectors and print tokens/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1_000_000, help="tokens for radio")
    parser.add_argument("--reference-tokens", type=int, default=2_000, help="tokens for the reference loop")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side; the median is reported")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, VOCAB, 500).tolist() for _ in range(max(1, args.tokens // 500))]
    n_tokens = sum(len(s) for s in sequences)

    for hashing, seed in (("radio", 1234), ("three_bricks", 1234)):
        wm = Watermark(WatermarkConfig("kgw", k=args.k, gamma=GAMMA, hashing=hashing), key=seed, vocab_size=VOCAB)
        subset = sequences if hashing == "radio" else sequences[: max(1, 4_000 // 500)]
        detect_tokens(wm, subset[:2])  # warm-up
        elapsed = _median_seconds(lambda wm=wm, subset=subset: detect_tokens(wm, subset), args.repeats)
        tokens = sum(len(s) for s in subset)
        print(f"radio ({hashing:12s}): {tokens:>9d} tokens in {elapsed:7.3f} s = {tokens / elapsed:12.0f} tokens/s")
        if hashing == "radio":
            radio_rate = tokens / elapsed
        else:
            compat_rate = tokens / elapsed

    ref_sequences = []
    budget = args.reference_tokens
    for seq in sequences:
        if budget <= 0:
            break
        ref_sequences.append(seq[:budget])
        budget -= len(ref_sequences[-1])
    ref_tokens = sum(len(s) for s in ref_sequences)
    ref_elapsed = _median_seconds(lambda: reference_detect(ref_sequences, 1234, args.k), args.repeats)
    ref_rate = ref_tokens / ref_elapsed
    print(f"reference (randperm/token): {ref_tokens:>9d} tokens in {ref_elapsed:7.3f} s = {ref_rate:12.0f} tokens/s")
    print(f"speed-up radio hashing        / reference: {radio_rate / ref_rate:8.0f}x  (goal >= 1000x)")
    print(f"speed-up three_bricks hashing / reference: {compat_rate / ref_rate:8.1f}x  (exact compatibility mode)")
    print(f"total tokens radio: {n_tokens}")


if __name__ == "__main__":
    main()
