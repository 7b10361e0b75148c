"""The replication preset's `memorization:` section: defaults on, bad values rejected naming the field."""

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
