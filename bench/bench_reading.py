"""Reading-mode throughput: the open-model test (forward + top-1 + windows + exclusion + tape + hashing) vs the bare
forward pass of the same model on the same batches. Goal: scoring adds at most 10%.

A Llama-style model is built from a preset (random weights: speed does not depend on them) with a vocabulary of
--vocab entries; the text is random token ids. Both paths run --repeats times after one warm-up; the best time of
each is reported. On GPU both run under the same bf16/fp16 autocast.

The distribution-based test (`open-dist`) is timed beside the argmax test in the same run: the argmax suite (read
with top-1 only, the test under the key and --wrong-keys wrong keys) against the same suite plus the distribution
test under every key (read once with --top-m, aggregation per window once, then hashing and a bound per key).
Goal: at most 1.2x. The reference-calibrated test (`open-ref`) is timed the same way, the reference R a second model
of the same preset: it needs R's own forward pass over the same text, so it costs about one more read.

    python bench/bench_reading.py [--preset tiny-1m] [--vocab 32000] [--tokens 100000] [--device auto]
                                  [--top-m 64] [--wrong-keys 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from radio.detect.open_model import _reduce_logits, autocast_context, open_model_test, pack_texts, read_texts
from radio.detect.open_model_dist import open_model_dist_test, window_mass
from radio.detect.reference import reference_probs
from radio.detect.result import derive_key
from radio.device import resolve_device
from radio.models import build_model
from radio.watermark import Watermark, WatermarkConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_forward(model: torch.nn.Module, chunks: torch.Tensor, batch_size: int, device: torch.device) -> float:
    """Seconds for the forward passes alone (logits of every batch, nothing kept)."""
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode(), autocast_context(device, None):
        for first in range(0, chunks.shape[0], batch_size):
            batch = chunks[first : first + batch_size].to(device, non_blocking=True)
            logits = model(input_ids=batch, use_cache=False).logits
    del logits
    _sync(device)
    return time.perf_counter() - start


def reading_test(
    model: torch.nn.Module,
    wm: Watermark,
    texts: list[np.ndarray],
    seq_len: int,
    batch_size: int,
    fused_head: bool | None = None,
) -> tuple[float, float, float, int]:
    """Seconds for the whole open-model test; also its forward seconds, the log10 p and the tokens scored."""
    device = next(model.parameters()).device
    _sync(device)
    start = time.perf_counter()
    reading = read_texts(
        model, texts, wm.k, seq_len=seq_len, batch_size=batch_size, separator_id=None, fused_head=fused_head
    )
    result = open_model_test(wm, reading)
    _sync(device)
    return time.perf_counter() - start, reading.forward_s, result.log10_pvalue, result.n_scored


def suite(
    model: torch.nn.Module,
    wm: Watermark,
    texts: list[np.ndarray],
    seq_len: int,
    batch_size: int,
    fused_head: bool | None,
    wrong_keys: int,
    top_m: int,
    reference: torch.nn.Module | None = None,
) -> tuple[float, float]:
    """Seconds for the argmax test under the key and `wrong_keys` wrong keys; with `top_m` > 0 the distribution test
    under the same keys as well, from the same reading pass (with `reference`: the reference-calibrated test, R
    reading the same text). Also the distribution test's log10 p (nan without)."""
    device = next(model.parameters()).device
    keys = [wm, *(wm.with_key(derive_key(b"bench-reading", i)) for i in range(wrong_keys))]
    _sync(device)
    start = time.perf_counter()
    reading = read_texts(
        model,
        texts,
        wm.k,
        seq_len=seq_len,
        batch_size=batch_size,
        separator_id=None,
        fused_head=fused_head,
        top_m=top_m,
    )
    for key in keys:
        open_model_test(key, reading)
    log10_p = float("nan")
    if top_m:
        ref = None
        if reference is not None:
            ref = reference_probs(reference, texts, reading, batch_size=batch_size, separator_id=None)
        mass = window_mass(wm, reading, reference=ref, weighting="mean" if ref is None else "sum")
        log10_p = [open_model_dist_test(key, reading, mass=mass).log10_pvalue for key in keys][0]  # noqa: RUF015
    _sync(device)
    return time.perf_counter() - start, log10_p


def top_m_read(model: torch.nn.Module, chunks: torch.Tensor, top_m: int, repeats: int) -> tuple[float, float]:
    """Best seconds of the top-m read of one batch's logits (top-m probabilities and ids, the reading pass's
    `_reduce_logits`) against `torch.topk` with `torch.logsumexp` on the same logits, side by side."""
    with torch.inference_mode():
        logits = model(input_ids=chunks, use_cache=False).logits.float()
    flat = logits.reshape(-1, logits.shape[-1])
    slices = list(flat.split(max(1, (1 << 22) // flat.shape[-1])))  # the fused head's slices of positions

    def plain() -> None:
        for part in slices:
            top = part.topk(top_m, dim=-1, sorted=True)
            (top.values - torch.logsumexp(part, dim=-1, keepdim=True)).exp()

    def folded() -> None:
        for part in slices:
            _reduce_logits(part, top_m)

    times: dict[str, list[float]] = {"plain": [], "folded": []}
    for _ in range(repeats):
        for name, run in (("plain", plain), ("folded", folded)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return min(times["plain"]), min(times["folded"])


def main() -> None:
    """Time both paths and print tokens/s side by side with the overhead ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny-1m")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave the default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--top-m", type=int, default=64, help="tokens per position kept for the distribution test")
    parser.add_argument("--wrong-keys", type=int, default=3, help="wrong keys in the argmax / distribution suites")
    parser.add_argument(
        "--fused-head", choices=("auto", "on", "off"), default="auto", help="LM head + argmax on slices of positions"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(resolve_device(args.device))
    model = build_model(args.preset, vocab_size=args.vocab, seed=0).to(device).eval()
    reference = build_model(args.preset, vocab_size=args.vocab, seed=1).to(device).eval()
    wm = Watermark(WatermarkConfig("kgw", k=args.k, gamma=0.25), key=b"bench-reading", vocab_size=args.vocab)
    rng = np.random.default_rng(0)
    texts = [rng.integers(0, args.vocab, 400) for _ in range(max(1, args.tokens // 400))]
    n_tokens = sum(t.size for t in texts)
    chunks, _, _ = pack_texts(texts, args.seq_len, None)

    bare_forward(model, chunks[: args.batch_size], args.batch_size, device)  # warm-up (kernels, allocator)
    fused = {"auto": None, "on": True, "off": False}[args.fused_head]
    reading_test(model, wm, texts[:4], args.seq_len, args.batch_size, fused)
    bares, runs, argmax_suites, dist_suites, ref_suites = [], [], [], [], []
    suite_args = (args.seq_len, args.batch_size, fused, args.wrong_keys)
    suite(model, wm, texts[:4], *suite_args, args.top_m)
    for _ in range(args.repeats):  # interleaved, so that a busy neighbour slows both paths alike
        bares.append(bare_forward(model, chunks, args.batch_size, device))
        runs.append(reading_test(model, wm, texts, args.seq_len, args.batch_size, fused))
        argmax_suites.append(suite(model, wm, texts, *suite_args, 0)[0])
        dist_suites.append(suite(model, wm, texts, *suite_args, args.top_m))
        ref_suites.append(suite(model, wm, texts, *suite_args, args.top_m, reference))
    bare = min(bares)
    full, forward_in_test, log10_p, n_scored = min(runs)
    post = min(r[0] - r[1] for r in runs)
    pair_ratio = float(np.median([r[0] / b for r, b in zip(runs, bares, strict=True)]))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(
        f"model {args.preset}, vocab {args.vocab}, {n_tokens:,} tokens, seq_len {args.seq_len}, batch "
        f"{args.batch_size}, k={args.k}, fused head {args.fused_head}, device {name}"
    )
    print(f"{'bare forward':>28}: {n_tokens / bare:>12,.0f} tokens/s  ({bare:.3f} s)")
    print(
        f"{'reading test with scoring':>28}: {n_tokens / full:>12,.0f} tokens/s  ({full:.3f} s; forward+argmax "
        f"{forward_in_test:.3f} s, windows/exclusion/tape/hashing {full - forward_in_test:.3f} s)"
    )
    print(
        f"{'overhead of scoring':>28}: {100 * (full / bare - 1):+.1f}% best vs best, {100 * (pair_ratio - 1):+.1f}% "
        f"median of paired runs; after the forward pass alone {100 * post / bare:.1f}%  (goal <= +10%)"
    )
    print(f"{'sanity':>28}: {n_scored:,} tokens scored, log10 p = {log10_p:.2f} (random weights: H0 holds)")
    argmax_best, dist_best = min(argmax_suites), min(r[0] for r in dist_suites)
    paired = float(np.median([d[0] / a for d, a in zip(dist_suites, argmax_suites, strict=True)]))
    print(
        f"{'argmax suite':>28}: {argmax_best:.3f} s (read + open test under the key and {args.wrong_keys} wrong keys)"
    )
    print(
        f"{'argmax + distribution suite':>28}: {dist_best:.3f} s (read with top-{args.top_m} + both tests under "
        f"every key; distribution log10 p {dist_suites[0][1]:.2f})"
    )
    print(
        f"{'distribution test cost':>28}: {dist_best / argmax_best:.3f}x best vs best, {paired:.3f}x median of "
        "paired runs  (goal <= 1.2x)"
    )
    if args.top_m and device.type == "cpu":
        plain, folded = top_m_read(model, chunks[: args.batch_size], args.top_m, args.repeats + 2)
        print(
            f"{'top-m read of one batch':>28}: {folded:.3f} s folded top-m (radio) against {plain:.3f} s torch.topk + "
            f"logsumexp: {plain / folded:.2f}x faster"
        )
    ref_best = min(r[0] for r in ref_suites)
    ref_paired = float(np.median([r[0] / a for r, a in zip(ref_suites, argmax_suites, strict=True)]))
    print(
        f"{'argmax + reference suite':>28}: {ref_best:.3f} s (read with top-{args.top_m}, R's read, both tests under "
        f"every key; reference-calibrated log10 p {ref_suites[0][1]:.2f})"
    )
    print(
        f"{'reference test cost':>28}: {ref_best / argmax_best:.3f}x best vs best, {ref_paired:.3f}x median of "
        "paired runs  (R's forward pass included)"
    )


if __name__ == "__main__":
    main()
