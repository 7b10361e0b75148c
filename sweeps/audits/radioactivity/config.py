"""Configuration of the radioactivity ablation sweep: one dataclass per concern, read from a preset YAML file.

Unknown keys and impossible values are rejected (naming the field) before anything starts.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radio.config import ConfigError, from_dict, require, to_dict
from radio.data import GenerateConfig, MixConfig, PrepareConfig
from radio.detect.spec import DetectionSpec
from radio.train import FinetuneConfig
from radio.watermark import WatermarkConfig
from sweeps.engine.errors import ConfigError as EngineConfigError
from sweeps.engine.grid import GridSection
from sweeps.engine.presets import load_sections

PRESET_DIR = Path(__file__).resolve().parent / "presets"
AXES = ("rho", "lr", "epochs", "size", "k", "scheme", "method", "purify_steps", "paraphrase")
# Axes a preset may leave out of grid.base: their value there when it does (the paper's set-up). Beyond the paper:
# purify_steps (Bob fine-tunes B further on clean data) and paraphrase (the strength in [0, 1] of Bob's token-level
# rewrite of his training answers with his own base model, `radio.data.paraphrase`; Pan et al., 2025).
AXIS_DEFAULTS: dict[str, Any] = {"purify_steps": 0, "paraphrase": 0.0}


class GridConfig(GridSection):
    """The base point (every axis), the axes varied one at a time around it, extra points, and seeds."""

    AXES = AXES
    AXIS_DEFAULTS = AXIS_DEFAULTS


@dataclass(frozen=True)
class DetectConfig:
    """The tests every checkpoint gets (flat DetectionSpec fields: the common ones and the setting's options,
    minus the data folder), and how the actors run.

    Utility: held-out perplexity on `utility_texts` corpus texts that neither A nor B trained on, and on the
    answers of `utility_answers` held-out records of A (given their prompts): how well B fits A's answers.
    """

    tests: list[dict[str, Any]]
    wrong_keys: int = 1
    batch_size: int = 32
    seq_len: int = 256
    device: str = "auto"
    amp: str | None = None
    utility_texts: int = 200
    utility_answers: int = 200

    def __post_init__(self) -> None:
        require(bool(self.tests), "detect.tests", "needs at least one test")
        names = [t.get("name") for t in self.tests]
        require(all(names) and len(set(names)) == len(names), "detect.tests", "every test needs a unique name")
        for name in names:  # they become MLflow metric names
            require(
                re.fullmatch(r"[A-Za-z0-9_.\-]+", str(name)) is not None,
                "detect.tests.name",
                f"{name!r}: use A-Z a-z 0-9 _ . -",
            )
        for test in self.tests:
            require("data" not in test, f"detect.tests.{test['name']}.data", "is set by the sweep (the trial's mix)")
            try:
                DetectionSpec.from_dict(test)
            except (ConfigError, ValueError) as err:
                raise ConfigError(f"detect.tests.{test['name']}: {err}") from err
        require(self.wrong_keys >= 0, "detect.wrong_keys", f"must be >= 0, got {self.wrong_keys}")
        require(self.utility_texts >= 0, "detect.utility_texts", f"must be >= 0, got {self.utility_texts}")
        require(self.utility_answers >= 0, "detect.utility_answers", f"must be >= 0, got {self.utility_answers}")


@dataclass(frozen=True)
class ResourceConfig:
    """Ray resources: a trial (its Ray Train workers included), a shared-stage task, a detection actor."""

    trial: dict[str, int | float] = field(default_factory=lambda: {"cpu": 0.01, "workers": 1, "cpu_per_worker": 1})
    stage: dict[str, int | float] = field(default_factory=lambda: {"cpu": 1})
    detect: dict[str, int | float] = field(default_factory=lambda: {"cpu": 1})
    detect_actors: int = 1


@dataclass(frozen=True)
class AblationConfig:
    """Everything one sweep needs, from a preset file."""

    name: str
    grid: GridConfig
    watermark: WatermarkConfig = field(default_factory=WatermarkConfig)  # scheme and k: set per trial by the grid
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    finetune: dict[str, Any] = field(default_factory=dict)
    detect: DetectConfig = field(default_factory=lambda: DetectConfig(tests=[{"name": "open", "setting": "open"}]))
    resources: ResourceConfig = field(default_factory=ResourceConfig)
    models: dict[str, str] = field(default_factory=dict)  # size -> Bob's local base checkpoint (real runs)
    # Purification (grid axis purify_steps > 0): Bob continues fine-tuning B for that many optimizer steps on clean
    # data (the mix's `clean` split: plain answers of A outside his training set) before Alice tests it. These
    # fields override the fine-tuning section for that second phase (e.g. its learning rate).
    purify: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # validates the fine-tuning section, naming its fields (the replay corpus is the prepared one, set per trial)
        self.finetune_config(**({"replay_corpus": "corpus"} if self.finetune.get("replay_ratio") else {}))
        # scheme and k are grid axes: a preset sets them in grid.base; each trial replaces the watermark section's
        # values with its own (`watermark_config`), so a different value there would be silently ignored.
        default = WatermarkConfig()
        for axis in ("scheme", "k"):
            value = getattr(self.watermark, axis)
            require(
                value in (getattr(default, axis), self.grid.base[axis]),
                f"watermark.{axis}",
                f"is a grid axis; set grid.base.{axis} (or vary it) instead",
            )
        for scheme in {self.grid.base["scheme"], *self.grid.vary.get("scheme", [])}:
            for k in {self.grid.base["k"], *self.grid.vary.get("k", [])}:
                self.watermark_config(scheme, k)  # every grid point's watermark is valid before anything runs
        purify_steps = {self.grid.base["purify_steps"], *self.grid.vary.get("purify_steps", [])}
        if any(int(n) > 0 for n in purify_steps):
            require(self.mix.clean_size > 0, "mix.clean_size", "must be > 0 when the grid purifies (purify_steps > 0)")
            self.purify_config(max(int(n) for n in purify_steps))
        sizes = {self.grid.base["size"], *self.grid.vary.get("size", [])}
        if self.models:
            unknown = sorted(str(s) for s in sizes if s not in self.models)
            require(not unknown, "models", f"no local checkpoint for size(s) {unknown}")

    def watermark_config(self, scheme: str, k: int) -> WatermarkConfig:
        """The watermark of one trial: the preset's gamma, delta and hashing at the trial's scheme and k."""
        try:
            return dataclasses.replace(self.watermark, scheme=scheme, k=k)
        except (ConfigError, ValueError) as err:
            raise ConfigError(f"watermark: {err}") from err

    def finetune_config(self, **overrides: Any) -> FinetuneConfig:
        """The fine-tuning config of one trial (`overrides`: the trial's lr, epochs, method, seed)."""
        try:
            return FinetuneConfig.from_dict({**self.finetune, **overrides})
        except (ConfigError, ValueError) as err:
            raise ConfigError(f"finetune: {err}") from err

    def purify_config(self, steps: int, **overrides: Any) -> FinetuneConfig:
        """The config of the purification phase: the fine-tune's, then the `purify` section, for `steps` steps."""
        try:
            return FinetuneConfig.from_dict({**self.finetune, **overrides, **self.purify, "max_steps": int(steps)})
        except (ConfigError, ValueError) as err:
            raise ConfigError(f"purify: {err}") from err

    def public_dict(self) -> dict[str, Any]:
        """The whole config as plain JSON (no secrets live in it), for hashing and the parent run's params."""
        return to_dict(self)


def load_preset(name_or_path: str) -> AblationConfig:
    """A preset by name (`tiny`, `paper`: files in this audit's presets/) or by path to a YAML file; `extends:`
    as in `sweeps.engine.presets`."""
    try:
        path, sections = load_sections(name_or_path, PRESET_DIR)
    except EngineConfigError as err:  # the library's ConfigError, as every other config error of the audit
        raise ConfigError(str(err)) from err
    return from_dict(AblationConfig, sections, where=str(path))


def replace_nested(config: Any, **changes: Any) -> Any:
    """`dataclasses.replace` that names the field when a change is invalid."""
    try:
        return dataclasses.replace(config, **changes)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from err
