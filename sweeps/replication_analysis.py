"""The analysis stage of the replication sweep: what the audit knows about the training data before generating.

Filter the corpus by keyword (CLIP token limit), embed the kept images, cluster, rank, list each cluster's top
words, find the target cluster (the planted artwork on the synthetic corpus), compute its thresholds under every
rule (highest-non-member over the keyword-filtered rows), write the prompts (five kinds, controls, and the object
prompts `control-subject` / `control-scene`), the nearest-training-caption similarity of every prompt, the word
pull of the keyword-filtered data into the target cluster, the detector's agreement on a labelled validation
sample and the subject's object rate in training. Everything goes to `analysis.json` and `arrays.npz`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.replication_config import ReplicationConfig
from sweeps.replication_steps import ANALYSIS_JSON, ARRAYS, validation_sample, write_json


def _target(config: ReplicationConfig, ranked: list[Any], captions: list[str], frame: Any, rows: np.ndarray) -> Any:
    """The ranked cluster the prompts aim at (see AnalysisConfig.target), or None when none qualifies."""
    from radio.replication.keywords import keyword_pattern

    kind, _, value = config.analysis.target.partition(":")
    if not ranked:
        return None
    if kind == "rank":
        rank = int(value)
        return ranked[rank - 1] if rank <= len(ranked) else None
    if kind == "column":
        column, _, wanted = value.partition("=")
        if column not in frame.columns:
            raise ValueError(f"analysis.target: the corpus has no column {column!r}")
        hits = frame[column].astype(str).to_numpy()[rows] == wanted
        counts = [int(hits[c.members].sum()) for c in ranked]
    else:
        pattern = keyword_pattern(value)
        holds = np.asarray([bool(pattern.search(c)) for c in captions])
        counts = [float(holds[c.members].mean()) for c in ranked]
    best = int(np.argmax(counts))
    return ranked[best] if counts[best] > 0 else None


def _prompts(config: ReplicationConfig, top: list[tuple[str, float]]) -> list[dict[str, str]]:
    from radio.replication.prompts import read_prompts, template_prompts

    cfg = config.analysis
    if cfg.prompts_file:
        prompts = read_prompts(Path(cfg.prompts_file).expanduser())
    else:
        keywords = cfg.prompt_keywords or cfg.keyword
        prompts = template_prompts(keywords, [w for w, _ in top], unrelated=cfg.unrelated, controls=cfg.controls)
    out = [{"kind": p.kind, "prompt": p.prompt} for p in prompts]
    # The object-level prompts: never meant to replicate the artwork either, so they are controls of it too.
    out.append({"kind": "control-subject", "prompt": cfg.subject_prompt})
    out.append({"kind": "control-scene", "prompt": cfg.scene_prompt})
    return out


def _object_training(config: ReplicationConfig, corpus: Any, detector: Any) -> dict[str, Any]:
    """The object's rate in the subject's training images: ground truth when the table has it, else the
    detector on a sample."""
    from radio.replication.keywords import filter_by_keyword
    from radio.replication.stats import clopper_pearson

    cfg = config.analysis
    rows = filter_by_keyword(corpus.captions, cfg.subject_keyword, None)
    if rows.size == 0:
        raise ValueError(f"analysis.subject_keyword: {cfg.subject_keyword!r} matches no caption of {corpus.source}")
    if cfg.object_column and cfg.object_column in corpus.frame.columns:
        flags = corpus.frame[cfg.object_column].to_numpy(dtype=bool)[rows]
        source = f"column {cfg.object_column}"
    else:
        rows = rows[: cfg.train_object_sample]
        flags = np.asarray(detector.detect(corpus.load_images(rows, size=cfg.image_size)), dtype=bool)
        source = f"detector {detector.name} on {rows.size} images"
    interval = clopper_pearson(int(flags.sum()), int(flags.size))
    return {
        "n": int(flags.size),
        "objects": int(flags.sum()),
        "rate": interval.rate,
        "ci_low": interval.ci_low,
        "ci_high": interval.ci_high,
        "source": source,
        "subject_rows": rows,
    }


def analyse(config: ReplicationConfig, corpus_path: Path, out_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Run the whole analysis of the corpus at `corpus_path` into `out_dir`; returns counts for the manifest."""
    from radio.replication.clustering import caption_words, cluster_embeddings, rank_clusters, top_words
    from radio.replication.corpus import load_corpus
    from radio.replication.detectors import agreement, get_detector
    from radio.replication.embedders import get_embedder, get_text_embedder, nearest_caption_similarity
    from radio.replication.keywords import filter_by_keyword
    from radio.replication.pull import word_pull
    from radio.replication.thresholds import cluster_thresholds

    cfg = config.analysis
    corpus = load_corpus(corpus_path, check_images=False)
    captions = corpus.captions
    max_tokens = cfg.max_tokens if cfg.max_tokens > 0 else None
    rows = filter_by_keyword(captions, cfg.keyword, max_tokens, cfg.tokenizer)
    if rows.size == 0:
        raise ValueError(f"analysis.keyword: {cfg.keyword!r} matches no caption of {corpus.source}")
    embedder = get_embedder(cfg.embedder, **cfg.embedder_args)
    embeddings = (
        corpus.embeddings(rows)
        if cfg.embedder == "column"
        else embedder.embed(corpus.load_images(rows, size=cfg.image_size))
    )
    labels = cluster_embeddings(embeddings, cfg.cluster_method, cfg.cluster_threshold)
    ranked = rank_clusters(labels, drop_largest=cfg.drop_largest, min_size=cfg.min_size)
    filtered = [captions[i] for i in rows]
    exclude = [cfg.keyword, cfg.prompt_keywords or cfg.keyword]
    target = _target(config, ranked, filtered, corpus.frame, rows)
    if target is None:
        raise ValueError(f"analysis.target: no cluster matches {cfg.target!r} among {len(ranked)} cluster(s)")
    clusters = []
    for cluster in ranked[: max(cfg.max_clusters, target.rank)]:
        thresholds = cluster_thresholds(embeddings, cluster.members)
        clusters.append(
            {
                "rank": cluster.rank,
                "size": cluster.size,
                "target": cluster.rank == target.rank,
                "top_words": top_words(filtered, cluster.members, k=cfg.top_words, exclude=exclude),
                "thresholds": {r: {"value": t.value, "definition": t.definition} for r, t in thresholds.items()},
            }
        )
    target_entry = next(c for c in clusters if c["target"])
    prompts = _prompts(config, target_entry["top_words"])

    in_target = np.zeros(len(rows), dtype=bool)
    in_target[target.members] = True
    pull = [asdict(p) for p in word_pull(filtered, in_target, words=cfg.pull_words or None, min_count=5)]

    text = get_text_embedder(cfg.text_embedder, **cfg.text_embedder_args)
    sims, where = nearest_caption_similarity(text, [p["prompt"] for p in prompts], captions)
    for prompt, sim, index in zip(prompts, sims, where, strict=True):
        prompt["nearest_caption_similarity"] = float(sim)
        prompt["nearest_caption"] = captions[int(index)]
    vocabulary = {word for caption in captions for word in caption_words(caption)}
    for prompt in prompts:
        prompt["unseen_words"] = sorted(caption_words(prompt["prompt"]) - vocabulary)

    detector = get_detector(cfg.detector, **cfg.detector_args)
    val_images, val_labels = validation_sample(config, seed)
    agree = asdict(agreement(detector, val_images, val_labels))
    training_objects = _object_training(config, corpus, detector)
    subject_rows = training_objects.pop("subject_rows")

    # Reference set of the image grids: the keyword-filtered rows and the subject's rows (capped).
    reference_rows = np.unique(np.concatenate([rows, subject_rows]))[: cfg.reference_max]
    reference = (
        embedder.embed(corpus.load_images(reference_rows, size=cfg.image_size))
        if cfg.embedder != "column"
        else corpus.embeddings(reference_rows)
    )
    np.savez_compressed(
        out_dir / ARRAYS,
        members=embeddings[target.members].astype(np.float32),
        member_rows=rows[target.members],
        reference=reference.astype(np.float32),
        reference_rows=reference_rows,
    )
    payload = {
        "corpus": str(corpus.source),
        "n_corpus": len(corpus),
        "keyword": cfg.keyword,
        "n_filtered": int(rows.size),
        "n_clusters_total": len(np.unique(labels)),
        "clusters": clusters,
        "target": {"rank": target.rank, "size": target.size, "thresholds": target_entry["thresholds"]},
        "prompts": prompts,
        "word_pull": pull,
        "detector_agreement": agree,
        "training_objects": training_objects,
        "embedder": cfg.embedder,
        "text_embedder": cfg.text_embedder,
    }
    write_json(out_dir / ANALYSIS_JSON, payload)
    return {"n_filtered": int(rows.size), "target_rank": target.rank, "target_size": target.size}
