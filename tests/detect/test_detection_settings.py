"""The detection-setting registry: a setting registered in one place is usable by spec, CLI and actor alike."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import radio.detect.settings as registry
from radio.cli import build_parser
from radio.config import ConfigError
from radio.detect.actor import DetectionActor
from radio.detect.spec import DetectionSpec


@dataclass(frozen=True)
class EchoOptions:
    """Options of the toy setting."""

    repeat: int = field(default=1, metadata={"help": "how many times to echo"})


@pytest.fixture
def echo() -> Iterator[None]:
    """Register a toy setting `echo` for one test (taken out of the registry afterwards)."""

    @registry.register("echo", EchoOptions, keyed=False, needs_data=lambda spec: False)
    def run_echo(actor: Any, spec: DetectionSpec, data: Path | None) -> dict[str, Any]:
        """Echo the options back."""
        return {"setting": "echo", "echo": [spec.name] * spec.options.repeat, "data": data}

    yield
    registry.SETTINGS.remove("echo")


def test_builtin_settings_are_registered() -> None:
    known = registry.all_settings()
    assert {"open", "closed", "mia"} <= set(known)
    assert known["open"].keyed and known["closed"].keyed and not known["mia"].keyed


def test_a_new_setting_needs_only_its_registration(echo: None, tmp_path: Path) -> None:
    spec = DetectionSpec.from_dict({"setting": "echo", "name": "hi", "repeat": 2})
    assert spec.options == EchoOptions(repeat=2) and DetectionSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match="max_new_tokens"):
        DetectionSpec.from_dict({"setting": "echo", "max_new_tokens": 3})
    with pytest.raises(ConfigError, match="repeat"):
        DetectionSpec.from_dict({"setting": "echo", "repeat": "two"})
    # the actor dispatches by name (no model needed by this setting)
    actor = DetectionActor.__new__(DetectionActor)
    actor.model_dir, actor.role, actor.default_data = tmp_path, "model", None
    row = actor.run({"setting": "echo", "name": "hi", "repeat": 3})
    assert row["echo"] == ["hi"] * 3 and row["spec"]["repeat"] == 3 and row["data"] is None
    # and `radio detect` offers it, with its option as a flag
    args = build_parser().parse_args(["detect", "--model", "m", "--setting", "echo", "--repeat", "4"])
    assert args.setting == "echo" and args.repeat == 4


def test_options_of_another_setting_are_rejected_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="answers"):
        DetectionSpec.from_dict({"setting": "open", "answers": "a.jsonl"})
    with pytest.raises(ConfigError, match="in_sequence_exclusion"):
        DetectionSpec.from_dict({"setting": "closed", "in_sequence_exclusion": False})
    with pytest.raises(ConfigError, match="setting"):
        DetectionSpec.from_dict({"setting": "nope"})
