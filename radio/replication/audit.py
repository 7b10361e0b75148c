"""The replication audit's data analysis, as one library function: what the audit knows of the training data before
it generates anything (Naseh, Roh, Houmansadr, arXiv 2312.03692).

`cluster_by_keyword` is the core both callers share (the sweep's analysis stage and `radio replication cluster`):
filter the corpus by keyword (CLIP token limit), embed the kept images, cluster, rank. `analyse_corpus` goes on:
each cluster's top words and thresholds under every rule, the target cluster (the planted artwork on the synthetic
corpus), the prompts (five kinds, controls, and the object prompts `control-subject` / `control-scene`), the
nearest-training-caption similarity of every prompt, the word pull of the keyword-filtered data into the target
cluster, the detector's agreement on a labelled validation sample and the subject's object rate in training. It
writes `analysis.json` and `arrays.npz` (the target cluster's member embeddings, and the reference set: the whole
training corpus up to `reference_max` rows, see `reference_set`) and returns a frozen `CorpusAnalysis`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radio.config import require
from radio.replication.artifacts import write_json

ANALYSIS_JSON = "analysis.json"
ARRAYS = "arrays.npz"
# Bumped whenever the analysis writes other content for the same config (the sweep hashes it into the analysis
# stage's key and so into every trial id: an old cached stage or recorded trial is not reused). 2: the reference
# set covers the whole corpus (it held the keyword-filtered and subject rows only), and the evaluation rows record
# each generation's nearest training image (`copy_flags:{rule}`).
ANALYSIS_VERSION = 2


@dataclass(frozen=True)
class AnalysisConfig:
    """The data analysis: keyword filter, embedding, clustering, target cluster, thresholds, prompts, word pull,
    nearest-caption similarity, object detector and its validation, the subject's training object rate.

    `target`: which cluster the prompts aim at: `column:VALUE` (the cluster holding most rows whose metadata
    column equals VALUE; the synthetic corpus marks its planted copies `group:planted`), `word:WORD` (the cluster
    whose captions hold WORD most often) or `rank:N`.
    """

    keyword: str = "varnhagen"
    prompt_keywords: str | None = "Elise Varnhagen"  # the keyword phrase of the prompts (default: `keyword`)
    max_tokens: int = 77
    tokenizer: str | None = None  # a local CLIP tokenizer folder (else the offline approximation)
    embedder: str = "pixel"
    embedder_args: dict[str, Any] = field(default_factory=dict)
    image_size: int = 32  # images are loaded at this size for the embedder
    cluster_method: str = "auto"
    cluster_threshold: float = 0.7
    drop_largest: bool = False
    min_size: int = 5
    top_words: int = 10
    max_clusters: int = 10
    target: str = "column:group=planted"
    pull_words: list[str] = field(
        default_factory=lambda: ["almond blossom", "almond", "blossom", "sunflowers", "orchard", "irises"]
    )
    # The unrelated scene and the controls are made of words the tiny model saw in training, on other images (a
    # generic caption, another painter's work). A word it never saw encodes as <unk>: a prompt of unseen words is
    # an empty prompt to it, and the empty prompt draws the most duplicated image (the planted artwork): the first
    # default ("a red bicycle leaning against a brick wall on a rainy city street") replicated in 34% of seeds.
    # `unseen_words` in analysis.json and in the caption_similarity table lists each prompt's words that no
    # training caption holds. A real model's prompts (sd14) come from its preset.
    unrelated: str = "green triangle and blue ring on sand background, stock photo"
    controls: dict[str, str] = field(
        default_factory=lambda: {
            "unrelated": "green triangle and blue ring on sand background, stock photo",
            "painter": "Fjord in Winter by Marek Solvang, oil on canvas",
        }
    )
    prompts_file: str | None = None  # JSONL / YAML prompts (kind, prompt) replacing the templates
    subject_keyword: str = "astronaut"
    subject_prompt: str = "an astronaut in a white spacesuit"
    scene_prompt: str = "outer space, stars, night sky"
    detector: str = "flag"
    detector_args: dict[str, Any] = field(default_factory=dict)
    object_column: str | None = "has_object"  # ground truth of the training object rate (else the detector)
    validation: str = "synthetic"  # a labelled sample: `synthetic` (drawn here) or a table with `has_object`
    validation_size: int = 200
    train_object_sample: int = 2000  # subject training images run through the detector at most
    text_embedder: str = "tfidf"
    text_embedder_args: dict[str, Any] = field(default_factory=dict)
    reference_max: int = 20000  # training images in the reference set (nearest-image grids, copies) at most

    def __post_init__(self) -> None:
        require(bool(self.keyword.strip()), "analysis.keyword", "must not be empty")
        require(-1.0 <= self.cluster_threshold <= 1.0, "analysis.cluster_threshold", "must be a cosine in [-1, 1]")
        require(self.min_size >= 1, "analysis.min_size", f"must be >= 1, got {self.min_size}")
        require(self.validation_size >= 1, "analysis.validation_size", "must be >= 1")
        require(self.reference_max >= 1, "analysis.reference_max", f"must be >= 1, got {self.reference_max}")
        kind, _, value = self.target.partition(":")
        require(
            kind in ("column", "word", "rank") and bool(value), "analysis.target", "column:NAME=VALUE, word:W or rank:N"
        )
        if kind == "column":
            require("=" in value, "analysis.target", f"column targets read column:NAME=VALUE, got {self.target!r}")
        if kind == "rank":
            require(value.isdigit() and int(value) >= 1, "analysis.target", f"rank:N needs N >= 1, got {value!r}")
        for name in self.controls:
            require(name.replace("-", "").replace("_", "").isalnum(), f"analysis.controls.{name}", "use a-z 0-9 - _")


@dataclass(frozen=True)
class KeywordClusters:
    """The keyword-filtered rows of a corpus, their image embeddings, cluster labels and ranked clusters.

    `rows` are corpus row numbers; `embeddings[i]` and `labels[i]` belong to `rows[i]`; `ranked` is what
    `rank_clusters` returns (members index into `rows`); `captions` are the filtered rows' captions.
    """

    rows: np.ndarray
    embeddings: np.ndarray
    labels: np.ndarray
    ranked: list[Any]
    captions: list[str]

    @property
    def n_clusters_total(self) -> int:
        """Distinct cluster labels, the catch-all and the small ones included."""
        return len(np.unique(self.labels))


def embed_rows(corpus: Any, rows: np.ndarray, embedder: Any, name: str, image_size: int) -> np.ndarray:
    """Image embeddings of corpus `rows`: the table's precomputed `embedding` column when `name` is `column`."""
    if name == "column":
        return corpus.embeddings(rows)
    return embedder.embed(corpus.load_images(rows, size=image_size))


def cluster_by_keyword(
    corpus: Any,
    keyword: str,
    *,
    max_tokens: int | None,
    tokenizer: str | None,
    embedder: Any,
    embedder_name: str,
    image_size: int,
    method: str,
    threshold: float,
    drop_largest: bool,
    min_size: int,
) -> KeywordClusters:
    """Filter `corpus` by `keyword` (captions within `max_tokens` CLIP tokens), embed the kept images, cluster and
    rank them. ValueError naming the keyword when no caption matches."""
    from radio.replication.clustering import cluster_embeddings, rank_clusters
    from radio.replication.keywords import filter_by_keyword

    rows = filter_by_keyword(corpus.captions, keyword, max_tokens, tokenizer)
    if rows.size == 0:
        within = f" within {max_tokens} CLIP tokens" if max_tokens else ""
        raise ValueError(f"keyword {keyword!r} matches no caption of {corpus.source}{within}")
    embeddings = embed_rows(corpus, rows, embedder, embedder_name, image_size)
    labels = cluster_embeddings(embeddings, method, threshold)
    ranked = rank_clusters(labels, drop_largest=drop_largest, min_size=min_size)
    return KeywordClusters(rows, embeddings, labels, ranked, [corpus.captions[i] for i in rows])


@dataclass(frozen=True)
class CorpusAnalysis:
    """What `analyse_corpus` found (the content of `analysis.json`; `payload()` is that file's JSON)."""

    corpus: str
    n_corpus: int
    keyword: str
    n_filtered: int
    n_clusters_total: int
    clusters: list[dict[str, Any]]
    target: dict[str, Any]
    prompts: list[dict[str, Any]]
    word_pull: list[dict[str, Any]]
    detector_agreement: dict[str, Any]
    training_objects: dict[str, Any]
    embedder: str
    text_embedder: str

    def payload(self) -> dict[str, Any]:
        """The JSON of `analysis.json`."""
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """Counts for a stage manifest."""
        return {"n_filtered": self.n_filtered, "target_rank": self.target["rank"], "target_size": self.target["size"]}


def _target(cfg: AnalysisConfig, ranked: list[Any], captions: list[str], frame: Any, rows: np.ndarray) -> Any:
    """The ranked cluster the prompts aim at (see AnalysisConfig.target), or None when none qualifies."""
    from radio.replication.keywords import keyword_pattern

    kind, _, value = cfg.target.partition(":")
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


def _prompts(cfg: AnalysisConfig, top: list[tuple[str, float]]) -> list[dict[str, Any]]:
    from radio.replication.prompts import read_prompts, template_prompts

    if cfg.prompts_file:
        prompts = read_prompts(Path(cfg.prompts_file).expanduser())
    else:
        keywords = cfg.prompt_keywords or cfg.keyword
        prompts = template_prompts(keywords, [w for w, _ in top], unrelated=cfg.unrelated, controls=cfg.controls)
    out: list[dict[str, Any]] = [{"kind": p.kind, "prompt": p.prompt} for p in prompts]
    # The object-level prompts: never meant to replicate the artwork either, so they are controls of it too.
    out.append({"kind": "control-subject", "prompt": cfg.subject_prompt})
    out.append({"kind": "control-scene", "prompt": cfg.scene_prompt})
    return out


def _object_training(cfg: AnalysisConfig, corpus: Any, detector: Any) -> dict[str, Any]:
    """The object's rate in the subject's training images: ground truth when the table has it, else the
    detector on a sample."""
    from radio.replication.keywords import filter_by_keyword
    from radio.replication.stats import clopper_pearson

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


def validation_sample(cfg: AnalysisConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The detector's labelled validation sample: (images, has_object). `synthetic` draws fresh subject and scene
    images (a seed the training corpus never used); otherwise a table with `image_path` and `has_object`."""
    from radio.replication.corpus import load_corpus

    if cfg.validation == "synthetic":
        import tempfile

        from radio.replication.synthetic import SyntheticCorpusConfig, build_synthetic_corpus

        n_scene = max(1, cfg.validation_size // 4)
        synthetic = SyntheticCorpusConfig(
            n_generic=0,
            n_painter_works=0,
            n_artist_works=0,
            n_planted=1,
            n_confounders=0,
            n_subject=cfg.validation_size - n_scene,
            n_scene=n_scene,
        )
        with tempfile.TemporaryDirectory() as tmp:
            corpus = load_corpus(build_synthetic_corpus(tmp, synthetic, seed=10_000 + seed))
            keep = np.flatnonzero(corpus.frame["group"].to_numpy() != "planted")
            images = corpus.load_images(keep, size=cfg.image_size)
            labels = corpus.frame["has_object"].to_numpy(dtype=bool)[keep]
        return images, labels
    corpus = load_corpus(Path(cfg.validation).expanduser())
    if "has_object" not in corpus.frame.columns:
        raise ValueError(f"{corpus.source}: the validation table needs a boolean column 'has_object'")
    rows = np.arange(min(len(corpus), cfg.validation_size))
    return corpus.load_images(rows, size=cfg.image_size), corpus.frame["has_object"].to_numpy(dtype=bool)[rows]


def _cluster_entries(cfg: AnalysisConfig, found: KeywordClusters, target: Any) -> list[dict[str, Any]]:
    """Rank, size, top words and thresholds of the first clusters (the target's rank at least)."""
    from radio.replication.clustering import top_words
    from radio.replication.thresholds import cluster_thresholds

    exclude = [cfg.keyword, cfg.prompt_keywords or cfg.keyword]
    out = []
    for cluster in found.ranked[: max(cfg.max_clusters, target.rank)]:
        thresholds = cluster_thresholds(found.embeddings, cluster.members)
        out.append(
            {
                "rank": cluster.rank,
                "size": cluster.size,
                "target": cluster.rank == target.rank,
                "top_words": top_words(found.captions, cluster.members, k=cfg.top_words, exclude=exclude),
                "thresholds": {r: {"value": t.value, "definition": t.definition} for r, t in thresholds.items()},
            }
        )
    return out


def _describe_prompts(cfg: AnalysisConfig, prompts: list[dict[str, Any]], captions: list[str]) -> None:
    """Add each prompt's nearest training caption (and its similarity) and the words no training caption holds."""
    from radio.replication.clustering import caption_words
    from radio.replication.embedders import get_text_embedder, nearest_caption_similarity

    text = get_text_embedder(cfg.text_embedder, **cfg.text_embedder_args)
    sims, where = nearest_caption_similarity(text, [p["prompt"] for p in prompts], captions)
    for prompt, sim, index in zip(prompts, sims, where, strict=True):
        prompt["nearest_caption_similarity"] = float(sim)
        prompt["nearest_caption"] = captions[int(index)]
    vocabulary = {word for caption in captions for word in caption_words(caption)}
    for prompt in prompts:
        prompt["unseen_words"] = sorted(caption_words(prompt["prompt"]) - vocabulary)


def reference_set(n_corpus: int, kept: list[np.ndarray], reference_max: int, seed: int = 0) -> np.ndarray:
    """The corpus rows of the reference set (sorted): every row of the corpus while it holds at most
    `reference_max`; else the rows of `kept` (the keyword-filtered and subject rows, the first `reference_max` of
    them if they alone exceed it) and a seeded uniform sample of the other rows up to `reference_max`.

    The reference is the whole training corpus, not only the rows the prompts aim at, because the evaluation asks
    of every generation whether it copies *any* training image (a second ground truth beside the planted artwork:
    `memorization_eval`). On a corpus larger than the cap the copies of an unsampled image are missed, so the
    copied rates are lower bounds there. Rows removed by training-set dedup stay in it (the analysis is shared by
    the dedup options; what dedup removes are near-copies of rows it keeps).
    """
    if reference_max < 1:
        raise ValueError(f"reference_max must be >= 1, got {reference_max}")
    if n_corpus <= reference_max:
        return np.arange(n_corpus, dtype=np.int64)
    keep = np.unique(np.concatenate([np.asarray(k, dtype=np.int64) for k in kept] or [np.zeros(0, np.int64)]))
    if keep.size >= reference_max:
        return keep[:reference_max]
    rest = np.setdiff1d(np.arange(n_corpus, dtype=np.int64), keep)
    sample = np.random.default_rng([seed, 0x5EF]).choice(rest, size=reference_max - keep.size, replace=False)
    return np.sort(np.concatenate([keep, sample]))


def analyse_corpus(cfg: AnalysisConfig, corpus_path: Path, out_dir: Path, seed: int = 0) -> CorpusAnalysis:
    """Run the whole analysis of the corpus at `corpus_path`: `analysis.json` and `arrays.npz` go to `out_dir`."""
    from radio.replication.corpus import load_corpus
    from radio.replication.detectors import agreement, get_detector
    from radio.replication.embedders import get_embedder
    from radio.replication.pull import word_pull

    corpus = load_corpus(corpus_path, check_images=False)
    embedder = get_embedder(cfg.embedder, **cfg.embedder_args)
    try:
        found = cluster_by_keyword(
            corpus,
            cfg.keyword,
            max_tokens=cfg.max_tokens if cfg.max_tokens > 0 else None,
            tokenizer=cfg.tokenizer,
            embedder=embedder,
            embedder_name=cfg.embedder,
            image_size=cfg.image_size,
            method=cfg.cluster_method,
            threshold=cfg.cluster_threshold,
            drop_largest=cfg.drop_largest,
            min_size=cfg.min_size,
        )
    except ValueError as err:
        raise ValueError(f"analysis.keyword: {err}") from err
    target = _target(cfg, found.ranked, found.captions, corpus.frame, found.rows)
    if target is None:
        raise ValueError(f"analysis.target: no cluster matches {cfg.target!r} among {len(found.ranked)} cluster(s)")
    clusters = _cluster_entries(cfg, found, target)
    target_entry = next(c for c in clusters if c["target"])
    prompts = _prompts(cfg, target_entry["top_words"])

    in_target = np.zeros(len(found.rows), dtype=bool)
    in_target[target.members] = True
    pull = [asdict(p) for p in word_pull(found.captions, in_target, words=cfg.pull_words or None, min_count=5)]
    _describe_prompts(cfg, prompts, corpus.captions)

    detector = get_detector(cfg.detector, **cfg.detector_args)
    val_images, val_labels = validation_sample(cfg, seed)
    agree = asdict(agreement(detector, val_images, val_labels))
    training_objects = _object_training(cfg, corpus, detector)
    subject_rows = training_objects.pop("subject_rows")

    # Reference set of the image grids and of the "copies a training image" labels: the whole corpus, capped at
    # reference_max; above the cap, the keyword-filtered and subject rows and a seeded uniform sample of the rest.
    reference_rows = reference_set(len(corpus), [found.rows, subject_rows], cfg.reference_max, seed)
    reference = embed_rows(corpus, reference_rows, embedder, cfg.embedder, cfg.image_size)
    np.savez_compressed(
        out_dir / ARRAYS,
        members=found.embeddings[target.members].astype(np.float32),
        member_rows=found.rows[target.members],
        reference=reference.astype(np.float32),
        reference_rows=reference_rows,
    )
    result = CorpusAnalysis(
        corpus=str(corpus.source),
        n_corpus=len(corpus),
        keyword=cfg.keyword,
        n_filtered=int(found.rows.size),
        n_clusters_total=found.n_clusters_total,
        clusters=clusters,
        target={"rank": target.rank, "size": target.size, "thresholds": target_entry["thresholds"]},
        prompts=prompts,
        word_pull=pull,
        detector_agreement=agree,
        training_objects=training_objects,
        embedder=cfg.embedder,
        text_embedder=cfg.text_embedder,
    )
    write_json(out_dir / ANALYSIS_JSON, result.payload())
    return result
