"""Configuration of the replication sweep: one dataclass per concern, read from a preset YAML file.

Unknown keys and impossible values are rejected (naming the field) before anything starts. Two sources:
`corpus.source: synthetic` (the embedded default: a synthetic corpus and a tiny model trained here, with the
training-time axes `duplicates` and `dedup`) and `corpus.source: table` (a LAION-style metadata table and a local
Stable Diffusion folder: `model.kind: sd`; the training-time axes are fixed there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from radio.config import ConfigError, from_dict, require, to_dict
from radio.replication.audit import AnalysisConfig
from sweeps.engine.errors import ConfigError as EngineConfigError
from sweeps.engine.grid import GridSection
from sweeps.engine.presets import load_sections

PRESET_DIR = Path(__file__).resolve().parent / "presets"
LEGACY_PREFIX = "replication-"  # the presets' names when all audits shared one folder
AXES = ("step", "guidance", "sampler_steps", "duplicates", "dedup")
TRAINING_AXES = ("step", "duplicates", "dedup")  # fixed (at 0 / 0 / none) for a model trained elsewhere
DEDUP_MODES = ("none", "exact", "near")  # radio.replication.dedup.DEDUP_MODES, without importing it here
HEADLINE_RULE = "least-similar-member"  # DESIGN §5: the rule of the prototype's headline numbers


class GridConfig(GridSection):
    """The base point (every axis), the axes varied one at a time around it, extra points, and seeds.

    A trial's seed is the replicate: it seeds the synthetic corpus, the training and the generation seeds.
    """

    AXES = AXES


@dataclass(frozen=True)
class CorpusConfig:
    """Where the training data comes from: a synthetic corpus drawn here (`synthetic` holds
    `SyntheticCorpusConfig` fields except `n_planted`, which is the `duplicates` axis), or a metadata table."""

    source: Literal["synthetic", "table"] = "synthetic"
    synthetic: dict[str, Any] = field(default_factory=dict)
    metadata: str | None = None  # table: a Parquet / JSONL file or a datasets folder (LAION-style metadata)

    def __post_init__(self) -> None:
        require("n_planted" not in self.synthetic, "corpus.synthetic.n_planted", "is the grid axis `duplicates`")
        require(
            self.source != "table" or bool(self.metadata), "corpus.metadata", "a table source needs its metadata path"
        )


@dataclass(frozen=True)
class DedupConfig:
    """Training-set deduplication (the `dedup` axis): the embedder and cosine threshold of `near`."""

    embedder: str = "pixel"
    threshold: float = 0.995  # pixel embeddings of augmented copies sit above it, distinct images below

    def __post_init__(self) -> None:
        require(0.0 < self.threshold <= 1.0, "dedup.threshold", f"must be in (0, 1], got {self.threshold}")


@dataclass(frozen=True)
class ModelConfig:
    """The model audited: `tiny` (trained here; `t2i` holds `TinyT2IConfig` fields, checkpoints saved at
    `checkpoint_steps` and at the last step) or `sd` (a local `StableDiffusionPipeline` folder at `path`)."""

    kind: Literal["tiny", "sd"] = "tiny"
    t2i: dict[str, Any] = field(default_factory=dict)
    checkpoint_steps: list[int] = field(default_factory=list)
    path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # generator options (sd: dtype, scheduler)

    def __post_init__(self) -> None:
        require(self.kind != "sd" or bool(self.path), "model.path", "an sd model needs its local pipeline folder")

    def train_steps(self) -> int:
        """The last training step (the tiny model's `train_steps`, 0 for a model trained elsewhere)."""
        if self.kind != "tiny":
            return 0
        from radio.replication.t2i import TinyT2IConfig

        return TinyT2IConfig.from_dict(dict(self.t2i)).train_steps

    def saved_steps(self) -> list[int]:
        """Every step with a checkpoint (the `step` axis takes these values)."""
        return sorted({*self.checkpoint_steps, self.train_steps()}) if self.kind == "tiny" else [0]


@dataclass(frozen=True)
class GenerateConfig:
    """Generation per trial: `samples` seeds per prompt (paired across prompts), in blocks of `block` seeds (one
    evaluation chunk each), `batch_size` images per forward pass, `grid_images` generations per image grid."""

    samples: int = 50
    block: int = 25
    batch_size: int = 50
    grid_images: int = 8
    device: str | None = "cpu"  # None: CUDA when available

    def __post_init__(self) -> None:
        for name in ("samples", "block", "batch_size"):
            require(getattr(self, name) >= 1, f"generate.{name}", f"must be >= 1, got {getattr(self, name)}")
        require(self.grid_images >= 0, "generate.grid_images", "must be >= 0")


@dataclass(frozen=True)
class MemorizationConfig:
    """The data-free memorization detectors (`radio.replication.memorization`), run on every evaluation task beside
    the training-set audit: Wen et al.'s noise difference (ICLR 2024) over the `steps` first sampling steps per
    seed (the generations' own trajectories), the agreement of the seeds' first-step clean estimates, and the
    words of each word-kind prompt attributed (`attribution`: gradient, drop, or none) over its first
    `attribution_seeds` seeds. `enabled: false` skips them."""

    enabled: bool = True
    steps: int = 2
    attribution: Literal["gradient", "drop", "none"] = "gradient"
    attribution_seeds: int = 8
    attribution_top: int = 3

    def __post_init__(self) -> None:
        require(self.steps >= 1, "memorization.steps", f"must be >= 1, got {self.steps}")
        require(
            self.attribution in ("gradient", "drop", "none"),
            "memorization.attribution",
            f"must be gradient, drop or none, got {self.attribution!r}",
        )
        for name in ("attribution_seeds", "attribution_top"):
            require(getattr(self, name) >= 1, f"memorization.{name}", f"must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class ResourceConfig:
    """Ray resources (`sweeps.engine.Resources` fields): each stage task and each evaluation actor.

    The model stage trains in one Ray Train worker: `model.cpu` is its stage task (about none: it only waits on
    the trainer), `model.cpu_per_worker` the worker's CPUs (torch's threads), `model.workers` is 1.
    """

    corpus: dict[str, float] = field(default_factory=lambda: {"cpu": 1})
    model: dict[str, float] = field(default_factory=lambda: {"cpu": 0, "workers": 1, "cpu_per_worker": 2})
    analysis: dict[str, float] = field(default_factory=lambda: {"cpu": 1})
    actor: dict[str, float] = field(default_factory=lambda: {"cpu": 1})
    actors: int = 2

    def __post_init__(self) -> None:
        require(
            self.model.get("workers", 1) == 1,
            "resources.model.workers",
            "the tiny model trains in one Ray Train worker; set workers: 1",
        )


@dataclass(frozen=True)
class ReplicationConfig:
    """Everything one replication sweep needs, from a preset file."""

    name: str
    grid: GridConfig
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    memorization: MemorizationConfig = field(default_factory=MemorizationConfig)
    resources: ResourceConfig = field(default_factory=ResourceConfig)

    def __post_init__(self) -> None:
        trained_here = self.corpus.source == "synthetic"
        require(
            trained_here == (self.model.kind == "tiny"),
            "model.kind",
            "the synthetic corpus trains a tiny model; a metadata table goes with an sd model",
        )
        if trained_here:
            from radio.replication.synthetic import SyntheticCorpusConfig
            from radio.replication.t2i import TinyT2IConfig

            try:
                SyntheticCorpusConfig(**self.corpus.synthetic)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"corpus.synthetic: {err}") from err
            try:
                t2i = TinyT2IConfig.from_dict(dict(self.model.t2i))
            except (ConfigError, ValueError) as err:
                raise ConfigError(f"model.t2i: {err}") from err
            # The thresholds come from training images embedded at analysis.image_size; generations at another
            # size would be scored against the wrong reference.
            require(
                t2i.image_size == self.analysis.image_size,
                "analysis.image_size",
                f"must equal the model's model.t2i.image_size ({t2i.image_size}), got {self.analysis.image_size}",
            )
            last = self.model.train_steps()
            bad = [s for s in self.model.checkpoint_steps if not 1 <= s <= last]
            require(not bad, "model.checkpoint_steps", f"{bad} outside [1, train_steps={last}]")
        else:
            fixed = {"step": 0, "duplicates": 0, "dedup": "none"}
            for axis, value in fixed.items():
                require(
                    self.grid.base[axis] == value and axis not in self.grid.vary,
                    f"grid.base.{axis}",
                    f"a model trained elsewhere has no {axis} axis: set {axis}: {value!r} and do not vary it",
                )

    def public_dict(self) -> dict[str, Any]:
        """The whole config as plain JSON, for hashing and the parent run's params."""
        return to_dict(self)


def load_preset(name_or_path: str) -> ReplicationConfig:
    """A preset by name (`tiny`, `smoke`, `dup`, `sd14`: files in this audit's presets/; the older names
    `replication-NAME` still work) or by path, validated; `extends:` as in `sweeps.engine.presets`."""
    if not Path(name_or_path).suffix:
        name_or_path = name_or_path.removeprefix(LEGACY_PREFIX)
    try:
        path, sections = load_sections(name_or_path, PRESET_DIR)
    except EngineConfigError as err:  # the library's ConfigError, as every other config error of the audit
        raise ConfigError(str(err)) from err
    return from_dict(ReplicationConfig, sections, where=str(path))
