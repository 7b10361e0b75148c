"""The replication preset's `memorization:` section (defaults on, bad values rejected naming the field) and the
analysis image size, which must be the model's."""

from __future__ import annotations

from pathlib import Path

import pytest

from radio.config import ConfigError
from sweeps.audits.replication.config import load_preset


def _preset(tmp_path: Path, section: str) -> str:
    path = tmp_path / "preset.yaml"
    path.write_text(f"extends: smoke\nmemorization: {section}\n")
    return str(path)


def test_the_default_runs_the_detector_with_gradient_attribution() -> None:
    config = load_preset("tiny").memorization
    assert config.enabled and config.attribution == "gradient" and config.steps >= 1


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("{steps: 0}", "memorization.steps"),
        ("{attribution: saliency}", "memorization.attribution"),
        ("{attribution_seeds: 0}", "memorization.attribution_seeds"),
        ("{nope: 1}", "nope"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, section: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        load_preset(_preset(tmp_path, section))


def test_disabled_is_accepted(tmp_path: Path) -> None:
    assert not load_preset(_preset(tmp_path, "{enabled: false}")).memorization.enabled


def test_analysis_image_size_must_be_the_models(tmp_path: Path) -> None:
    """The default trains at 16 pixels and analyses at 16; a preset that changes one alone is stopped."""
    tiny = load_preset("tiny")
    assert tiny.model.t2i["image_size"] == tiny.analysis.image_size == 16
    path = tmp_path / "mismatch.yaml"
    model = "model: {kind: tiny, t2i: {train_steps: 30, batch_size: 16, image_size: 24}}"
    path.write_text(f"extends: smoke\n{model}\n")
    with pytest.raises(ConfigError, match=r"analysis.image_size.*model.t2i.image_size \(24\), got 32"):
        load_preset(str(path))
