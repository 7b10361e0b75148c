"""The one registry type, and that every registry of radio is one of it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from radio.config import ConfigError
from radio.registry import Registry


def test_register_get_names_and_errors_naming_the_field() -> None:
    colours: Registry[int] = Registry("colour", field="paint.colour")

    @colours.register("red")
    def red() -> int:
        return 1

    colours.add("blue", 2)  # type: ignore[arg-type]
    assert colours.get("red") is red and colours.names() == ["blue", "red"] and "red" in colours
    assert sorted(colours) == ["blue", "red"] and len(colours) == 2
    with pytest.raises(ConfigError, match=r"paint\.colour: unknown colour 'green'; known: \['blue', 'red'\]"):
        colours.get("green")
    with pytest.raises(ConfigError, match=r"^x\.y: unknown colour"):
        colours.get("green", field="x.y")
    colours.add("red", red)  # the same object again: a module imported twice
    with pytest.raises(ValueError, match="registered twice"):
        colours.add("red", 3)  # type: ignore[arg-type]


def test_lazy_modules_load_on_the_first_lookup_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lazy: Registry[int] = Registry("thing", modules=("radio_lazy_probe",))
    (tmp_path / "radio_lazy_probe.py").write_text("from tests_lazy_target import LAZY\nLAZY.add('late', 7)\n")
    target = type(sys)("tests_lazy_target")
    target.LAZY = lazy  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_lazy_target", target)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "radio_lazy_probe" not in sys.modules  # building the registry imported nothing
    assert lazy.get("late") == 7 and "radio_lazy_probe" in sys.modules
    monkeypatch.delitem(sys.modules, "radio_lazy_probe")


def test_every_registry_of_radio_is_a_registry() -> None:
    from radio.detect.settings import SETTINGS
    from radio.replication.clustering import CLUSTERERS
    from radio.replication.detectors import DETECTORS
    from radio.replication.embedders import IMAGE_EMBEDDERS, TEXT_EMBEDDERS
    from radio.replication.generators import GENERATORS
    from radio.train.methods import METHODS
    from radio.watermark import HASHERS, SCHEMES

    expected = {
        "scheme": (SCHEMES, {"kgw", "aaronson"}),
        "hashing": (HASHERS, {"radio", "three_bricks"}),
        "setting": (SETTINGS, {"open", "closed", "mia"}),
        "method": (METHODS, {"full", "lora"}),
        "generator": (GENERATORS, {"tiny", "sd"}),
        "detector": (DETECTORS, {"flag"}),
        "image embedder": (IMAGE_EMBEDDERS, {"pixel"}),
        "text embedder": (TEXT_EMBEDDERS, {"tfidf"}),
        "clusterer": (CLUSTERERS, {"agglomerative"}),
    }
    for what, (registry, names) in expected.items():
        assert isinstance(registry, Registry), what
        assert names <= set(registry.names()), what


def test_a_setting_declares_what_it_scores() -> None:
    from radio.detect.settings import SETTINGS

    assert SETTINGS.get("mia").unit == "samples" and "d" in SETTINGS.get("mia").metrics
    assert SETTINGS.get("open").unit == "tokens" and SETTINGS.get("closed").unit == "tokens"
