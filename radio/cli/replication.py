"""`radio replication ...`: the replication audit one step at a time, JSON out.

- `synth OUT`: build the synthetic LAION-like corpus into a folder;
- `cluster CORPUS --keyword K`: filter a corpus by keyword, embed and cluster the images, rank the clusters, list
  their top words and thresholds under every rule, and the word pull into the largest cluster; `--out DIR` saves
  `clusters.json` and the members' embeddings (`clusters.npz`) for `score`;
- `score CLUSTERS GENERATED`: score generated images (a folder of images or an .npz with `images`) against a saved
  cluster: replication rate and Clopper–Pearson interval under every rule.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from radio.cli import CliError

CLUSTERS_JSON = "clusters.json"
CLUSTERS_NPZ = "clusters.npz"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def _print_json(payload: dict[str, Any]) -> None:
    """Strict JSON on stdout: NaN and infinities become the strings "nan", "inf", "-inf"."""
    from radio.stats.results import json_safe

    json.dump(json_safe(payload), sys.stdout, indent=2)
    sys.stdout.write("\n")


def _parse_kwargs(pairs: list[str] | None, option: str) -> dict[str, Any]:
    """KEY=VALUE pairs, values read as int, then float, else kept as text."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"{option} {pair!r}: expected KEY=VALUE")
        parsed: Any = value
        for cast in (int, float):
            try:
                parsed = cast(value)
                break
            except ValueError:
                continue
        out[key] = parsed
    return out


# ------------------------------------------------------------------------------------------------------- synth


def run_synth(args: argparse.Namespace) -> int:
    """Build the synthetic corpus and print its folder and group counts."""
    from radio.replication.corpus import load_corpus
    from radio.replication.synthetic import SyntheticCorpusConfig, build_synthetic_corpus

    overrides = {
        "n_generic": args.n_generic,
        "n_planted": args.n_planted,
        "n_subject": args.n_subject,
        "object_share": args.object_share,
    }
    config = SyntheticCorpusConfig(**{k: v for k, v in overrides.items() if v is not None})
    out = build_synthetic_corpus(args.out, config, seed=args.seed)
    frame = load_corpus(out, check_images=False).frame
    _print_json(
        {
            "out": str(out),
            "seed": args.seed,
            "config": asdict(config),
            "rows": len(frame),
            "groups": {str(k): int(v) for k, v in frame["group"].value_counts().sort_index().items()},
            "object_rows": int(frame["has_object"].sum()),
        }
    )
    return 0


# ----------------------------------------------------------------------------------------------------- cluster


def _cluster_entries(found: Any, ranked: list[Any], args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Each ranked cluster's entry (rank, size, member rows, top words, thresholds) and its members' embeddings."""
    from radio.replication.clustering import top_words
    from radio.replication.thresholds import cluster_thresholds

    exclude = [args.keyword] if args.exclude_keyword_words else []
    clusters = []
    arrays: dict[str, np.ndarray] = {}
    for cluster in ranked:
        thresholds = cluster_thresholds(found.embeddings, cluster.members)
        words = top_words(found.captions, cluster.members, k=args.top_words, exclude=exclude)
        clusters.append(
            {
                "rank": cluster.rank,
                "size": cluster.size,
                "members": [int(found.rows[m]) for m in cluster.members],
                "top_words": [{"word": w, "doc_freq": f} for w, f in words],
                "thresholds": {r: {"value": t.value, "definition": t.definition} for r, t in thresholds.items()},
            }
        )
        arrays[f"rank{cluster.rank}"] = found.embeddings[cluster.members]
    return clusters, arrays


def run_cluster(args: argparse.Namespace) -> int:
    """Filter by keyword, embed, cluster, rank; print (and with --out save) clusters, top words, thresholds."""
    from radio.replication.audit import cluster_by_keyword
    from radio.replication.corpus import load_corpus
    from radio.replication.embedders import get_embedder
    from radio.replication.pull import word_pull

    corpus = load_corpus(args.corpus, check_images=args.embedder != "column")
    max_tokens = None if args.max_tokens <= 0 else args.max_tokens
    embedder_kwargs = _parse_kwargs(args.embedder_arg, "--embedder-arg")
    try:
        found = cluster_by_keyword(
            corpus,
            args.keyword,
            max_tokens=max_tokens,
            tokenizer=args.tokenizer,
            embedder=None if args.embedder == "column" else get_embedder(args.embedder, **embedder_kwargs),
            embedder_name=args.embedder,
            image_size=args.size,
            method=args.method,
            threshold=args.threshold,
            drop_largest=args.drop_largest,
            min_size=args.min_size,
        )
    except ValueError as err:
        raise CliError(str(err)) from err
    indices, labels = found.rows, found.labels
    ranked = found.ranked[: args.max_clusters]
    captions = found.captions
    clusters, arrays = _cluster_entries(found, ranked, args)
    pull = []
    if ranked:
        in_top = np.zeros(len(indices), dtype=bool)
        in_top[ranked[0].members] = True
        pull = [asdict(p) for p in word_pull(captions, in_top, words=args.pull_words or None, min_count=5)]
        pull = pull[: args.top_words * 3] if not args.pull_words else pull
    payload = {
        "corpus": str(corpus.source),
        "keyword": args.keyword,
        "n_corpus": len(corpus),
        "n_filtered": int(indices.size),
        "max_tokens": max_tokens,
        "token_count": "clip-tokenizer" if args.tokenizer else "approximate",
        "embedder": args.embedder,
        "embedder_kwargs": embedder_kwargs,
        "image_size": args.size,
        "method": args.method,
        "threshold": args.threshold,
        "drop_largest": args.drop_largest,
        "n_clusters_total": len(np.unique(labels)),
        "clusters": clusters,
        "word_pull_top_cluster": pull,
    }
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.out / CLUSTERS_NPZ, **arrays)
        from radio.stats.results import json_safe

        (args.out / CLUSTERS_JSON).write_text(json.dumps(json_safe(payload), indent=2))
        payload["saved"] = str(args.out)
    # Member lists (corpus row numbers) can be long: they go to the saved file, stdout gets their count only.
    for entry in clusters:
        entry["members"] = f"{len(entry['members'])} rows (in {CLUSTERS_JSON} with --out)"
    _print_json(payload)
    return 0


# ------------------------------------------------------------------------------------------------------- score


def read_generated(path: Path) -> np.ndarray:
    """Generated images from an .npz (array `images`, uint8 (n, H, W, 3)) or a folder of image files
    (sorted by name); a CliError naming the path otherwise."""
    if path.is_file() and path.suffix == ".npz":
        with np.load(path) as data:
            if "images" not in data:
                raise CliError(f"{path}: no array 'images' (arrays: {', '.join(data.files)})")
            images = data["images"]
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise CliError(f"{path}: 'images' must be uint8 (n, H, W, 3), got {images.dtype} {images.shape}")
        return images
    if path.is_dir():
        from PIL import Image

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise CliError(f"{path}: no image files ({', '.join(_IMAGE_SUFFIXES)})")
        arrays = []
        for file in files:
            with Image.open(file) as image:
                arrays.append(np.asarray(image.convert("RGB")))
        if len({a.shape for a in arrays}) != 1:
            raise CliError(f"{path}: images differ in size")
        return np.stack(arrays)
    raise CliError(f"{path}: not found (expected a folder of images or an .npz file)")


def run_score(args: argparse.Namespace) -> int:
    """Score generated images against a saved cluster under every rule; print rates with intervals."""
    from radio.replication.embedders import get_embedder
    from radio.replication.stats import clopper_pearson
    from radio.replication.thresholds import score_generations

    saved = args.clusters / CLUSTERS_JSON
    if not saved.is_file():
        raise CliError(f"{saved}: not found (write it with `radio replication cluster ... --out DIR`)")
    meta = json.loads(saved.read_text())
    chosen = [c for c in meta["clusters"] if c["rank"] == args.rank]
    if not chosen:
        raise CliError(f"{saved}: no cluster of rank {args.rank} (ranks 1..{len(meta['clusters'])})")
    cluster = chosen[0]
    if meta["embedder"] == "column":
        raise CliError(f"{saved}: clustered on precomputed embeddings; embed the generations the same way")
    with np.load(args.clusters / CLUSTERS_NPZ) as data:
        members = data[f"rank{args.rank}"]
    images = read_generated(args.generated)
    embedder = get_embedder(meta["embedder"], **meta["embedder_kwargs"])
    if images.shape[1:3] != (meta["image_size"], meta["image_size"]):
        from radio.replication.embedders import _resize_batch

        images = _resize_batch(images, meta["image_size"])
    thresholds = {rule: t["value"] for rule, t in cluster["thresholds"].items()}
    result = score_generations(embedder.embed(images), members, thresholds)
    rows = []
    for i, rule in enumerate(result.rules):
        interval = clopper_pearson(int(result.flags[i].sum()), len(images), args.confidence)
        rows.append(
            {
                "rule": rule,
                "threshold": result.thresholds[i],
                "n": interval.n,
                "replicated": interval.successes,
                "rate": interval.rate,
                "ci_low": interval.ci_low,
                "ci_high": interval.ci_high,
            }
        )
    _print_json(
        {
            "clusters": str(args.clusters),
            "rank": args.rank,
            "generated": str(args.generated),
            "n": len(images),
            "confidence": args.confidence,
            "score_quantiles": dict(
                zip(("min", "median", "max"), np.quantile(result.scores, [0, 0.5, 1]).tolist(), strict=True)
            ),
            "rules": rows,
        }
    )
    return 0


# ---------------------------------------------------------------------------------------------------- register


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `radio replication` and its subcommands."""
    from radio.replication.clustering import method_names
    from radio.replication.embedders import embedder_names

    parser = subparsers.add_parser("replication", help="text-to-image replication audit", description=__doc__)
    sub = parser.add_subparsers(dest="replication_command", required=True)

    synth = sub.add_parser("synth", help="build the synthetic LAION-like corpus into a folder")
    synth.add_argument("out", type=Path, help="output folder")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--n-generic", type=int)
    synth.add_argument("--n-planted", type=int, help="copies of the planted artwork (default 200)")
    synth.add_argument("--n-subject", type=int)
    synth.add_argument("--object-share", type=float, help="share of subject images carrying the object")
    synth.set_defaults(handler=run_synth)

    cluster = sub.add_parser("cluster", help="filter a corpus by keyword and cluster its images")
    cluster.add_argument("corpus", type=Path, help="metadata table (.parquet/.jsonl) or its folder")
    cluster.add_argument("--keyword", required=True, help="phrase matched on word boundaries, any case")
    cluster.add_argument("--tokenizer", type=Path, help="local CLIP tokenizer folder (else approximate counts)")
    cluster.add_argument("--max-tokens", type=int, default=77, help="drop longer captions (0: keep all)")
    cluster.add_argument("--embedder", default="pixel", help=f"one of {embedder_names()} or 'column' (precomputed)")
    cluster.add_argument("--embedder-arg", action="append", metavar="KEY=VALUE", help="embedder option (repeat)")
    cluster.add_argument("--size", type=int, default=32, help="image side the images are loaded at")
    cluster.add_argument("--method", default="auto", choices=method_names())
    cluster.add_argument("--threshold", type=float, default=0.6, help="cosine similarity that joins clusters")
    cluster.add_argument("--drop-largest", action="store_true", help="drop the catch-all largest cluster")
    cluster.add_argument("--min-size", type=int, default=2)
    cluster.add_argument("--max-clusters", type=int, default=20)
    cluster.add_argument("--top-words", type=int, default=10)
    cluster.add_argument("--exclude-keyword-words", action="store_true", help="leave keyword words out of top words")
    cluster.add_argument("--pull-words", nargs="*", help="words or phrases for the pull analysis (default: all)")
    cluster.add_argument("--out", type=Path, help="folder for clusters.json and clusters.npz (for `score`)")
    cluster.set_defaults(handler=run_cluster)

    score = sub.add_parser("score", help="score generated images against a saved cluster")
    score.add_argument("clusters", type=Path, help="folder written by `cluster --out`")
    score.add_argument("generated", type=Path, help="folder of images or .npz with array 'images'")
    score.add_argument("--rank", type=int, default=1, help="cluster rank to score against")
    score.add_argument("--confidence", type=float, default=0.95)
    score.set_defaults(handler=run_score)
