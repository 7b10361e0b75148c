"""Power of the distribution-based open-model test against the paper's top-1 test, on trained checkpoints.

Every checkpoint is loaded once (`DetectionActor`, one reading pass per split for both tests) and tested with the
open tests of the tiny preset (unsupervised on the held-out split, with and without phi; supervised on the known
split), top-1 (`open`) and distribution-based (`open-dist`), each also under --wrong-keys wrong keys. The key is
read from --key-file (else $RADIO_WATERMARK_KEY), never printed.

    python bench/power_dist.py --run rho=0.1:CKPT:MIX --run base:BASE_CKPT:MIX [--top-m 64] [--k 1]
                               [--reference A_DIR [--excess positive --excess signed]] [--key-file KEY]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from radio.detect.actor import DetectionActor
from radio.watermark import WatermarkConfig

TESTS: list[dict[str, Any]] = [
    {"name": "open-unsupervised", "supervised": False},
    {"name": "open-unsupervised-phi", "supervised": False, "phi": 200, "phi_split": "phi"},
    {"name": "open-supervised", "supervised": True},
]


def specs(
    top_m: int, weightings: list[str], wrong_keys: int, references: list[str], excess: list[str]
) -> list[dict[str, Any]]:
    """Each test as top-1, distribution-based (per weighting) and reference-calibrated (per reference and excess,
    summed per window), each with its wrong keys."""
    out = []
    for test in TESTS:
        variants = [{**test, "setting": "open"}]
        variants += [
            {**test, "name": f"{test['name']}-dist" + ("" if w == "mean" else f"-{w}"), "setting": "open-dist"}
            | {"top_m": top_m, "weighting": w}
            for w in weightings
        ]
        variants += [
            {
                **test,
                "name": f"{test['name']}-ref-{Path(r).name}" + ("" if e == "positive" else f"-{e}"),
                "setting": "open-ref",
                "reference": r,
                "top_m": top_m,
                "excess": e,
            }
            for r in references
            for e in excess
        ]
        for spec in variants:
            out.append(spec)
            out += [{**spec, "key": "wrong", "wrong_key_index": i} for i in range(wrong_keys)]
    return out


def main() -> None:
    """Print one row per (checkpoint, test): log10 p, counts, and the wrong keys' log10 p."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="LABEL:CHECKPOINT_DIR:MIX_DIR")
    parser.add_argument("--key-file", type=Path, default=None)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--scheme", default="kgw")
    parser.add_argument("--gamma", type=float, default=0.25)
    parser.add_argument("--delta", type=float, default=4.0)
    parser.add_argument("--top-m", type=int, default=64)
    parser.add_argument("--weighting", action="append", default=None, help="mean (default), sum, sqrt; repeatable")
    parser.add_argument("--reference", action="append", default=[], help="open-ref against this model folder")
    parser.add_argument("--excess", action="append", default=None, help="open-ref weights: positive, signed")
    parser.add_argument("--wrong-keys", type=int, default=3)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    watermark = WatermarkConfig(args.scheme, k=args.k, gamma=args.gamma, delta=args.delta)
    print("| model | test | log10 p | scored | eligible | seen | wrong keys log10 p | s |")
    print("|---|---|---|---|---|---|---|---|")
    for run in args.run:
        label, checkpoint, mix = run.split(":")
        start = time.perf_counter()
        actor = DetectionActor(
            checkpoint, watermark, key_file=args.key_file, data=mix, device="cpu", seq_len=args.seq_len
        )
        tests = specs(
            args.top_m, args.weighting or ["mean"], args.wrong_keys, args.reference, args.excess or ["positive"]
        )
        role_rows = actor.run_all(tests)
        by_name: dict[str, list[dict[str, Any]]] = {}
        for row in role_rows:
            by_name.setdefault(row["spec"]["name"], []).append(row)
        for name, rows in by_name.items():
            main_row = next(r for r in rows if r["control"] != "wrong-key")
            wrong = [f"{r['log10_pvalue']:.2f}" for r in rows if r["control"] == "wrong-key"]
            print(
                f"| {label} | {name} | {main_row['log10_pvalue']:.2f} | {main_row['n_scored']:,} | "
                f"{main_row['n_eligible']:,} | {main_row['n_seen']:,} | {', '.join(wrong)} | "
                f"{time.perf_counter() - start:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
