"""Detection settings, registered by name: a setting is one module in this package and one `@register` call.

A setting declares a small frozen options dataclass (its own fields of a test, beside the common ones of
`DetectionSpec`) and a function that runs one test on a `DetectionActor` and returns a JSON-able row:

    @dataclass(frozen=True)
    class MyOptions:
        window: int = field(default=4, metadata={"help": "shown by `radio detect --help`"})

    @register("mine", MyOptions)
    def run_mine(actor: DetectionActor, spec: DetectionSpec, data: Path | None) -> dict[str, Any]: ...

Every module of this package is imported on the first lookup, so a new setting touches no other file: the actor,
`DetectionSpec` (preset YAML and `from_dict`), the `radio detect` flags and the sweep's wrong-key controls all
read the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from radio.registry import Registry

if TYPE_CHECKING:
    from radio.detect.actor import DetectionActor
    from radio.detect.spec import DetectionSpec

RunFn = Callable[["DetectionActor", "DetectionSpec", "Path | None"], dict[str, Any]]
Unit = Literal["tokens", "samples"]


def _always(spec: DetectionSpec) -> bool:
    return True


@dataclass(frozen=True)
class Setting:
    """One registered setting: its name, options type, run function, and what the callers need to know.

    `keyed`: the test depends on the watermark key (wrong-key controls apply). `supervised`: the supervised /
    unsupervised choice changes the test (the CLI then requires it). `needs_data(spec)`: whether the test reads
    Alice's mix folder. `unit`: what the test scores, `tokens` (watermark tests: power tables count tokens) or
    `samples` (MIA). `metrics`: the numeric fields of its row beyond the common ones (p-value, counts) that the
    sweep's tables keep.
    """

    name: str
    options: type
    run: RunFn
    keyed: bool = True
    supervised: bool = True
    needs_data: Callable[[DetectionSpec], bool] = _always
    doc: str = ""
    unit: Unit = "tokens"
    metrics: tuple[str, ...] = ()


SETTINGS: Registry[Setting] = Registry("setting", package=__name__)


def register(
    name: str,
    options: type,
    *,
    keyed: bool = True,
    supervised: bool = True,
    needs_data: Callable[[DetectionSpec], bool] = _always,
    unit: Unit = "tokens",
    metrics: tuple[str, ...] = (),
) -> Callable[[RunFn], RunFn]:
    """Decorator registering `run` as setting `name` with its frozen `options` dataclass."""

    def decorate(run: RunFn) -> RunFn:
        doc = (run.__doc__ or "").strip().splitlines()[0] if run.__doc__ else ""
        existing = SETTINGS._entries.get(name)
        if existing is not None and existing.run is run:
            return run
        SETTINGS.add(name, Setting(name, options, run, keyed, supervised, needs_data, doc, unit, tuple(metrics)))
        return run

    return decorate


def all_settings() -> dict[str, Setting]:
    """Every registered setting by name."""
    return dict(SETTINGS)


def get_setting(name: str) -> Setting:
    """The setting registered as `name`; ConfigError naming the field `setting` and the known names otherwise."""
    return SETTINGS.get(name)


__all__ = ["SETTINGS", "Setting", "Unit", "all_settings", "get_setting", "register"]
