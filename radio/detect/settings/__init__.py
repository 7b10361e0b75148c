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

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radio.config import ConfigError

if TYPE_CHECKING:
    from radio.detect.actor import DetectionActor
    from radio.detect.spec import DetectionSpec

RunFn = Callable[["DetectionActor", "DetectionSpec", "Path | None"], dict[str, Any]]


def _always(spec: DetectionSpec) -> bool:
    return True


@dataclass(frozen=True)
class Setting:
    """One registered setting: its name, options type, run function, and what the callers need to know.

    `keyed`: the test depends on the watermark key (wrong-key controls apply). `supervised`: the supervised /
    unsupervised choice changes the test (the CLI then requires it). `needs_data(spec)`: whether the test reads
    Alice's mix folder.
    """

    name: str
    options: type
    run: RunFn
    keyed: bool = True
    supervised: bool = True
    needs_data: Callable[[DetectionSpec], bool] = _always
    doc: str = ""


_SETTINGS: dict[str, Setting] = {}
_discovered = False


def register(
    name: str,
    options: type,
    *,
    keyed: bool = True,
    supervised: bool = True,
    needs_data: Callable[[DetectionSpec], bool] = _always,
) -> Callable[[RunFn], RunFn]:
    """Decorator registering `run` as setting `name` with its frozen `options` dataclass."""

    def decorate(run: RunFn) -> RunFn:
        if name in _SETTINGS and _SETTINGS[name].run is not run:
            raise ValueError(f"setting {name!r}: registered twice")
        doc = (run.__doc__ or "").strip().splitlines()[0] if run.__doc__ else ""
        _SETTINGS[name] = Setting(name, options, run, keyed, supervised, needs_data, doc)
        return run

    return decorate


def _discover() -> None:
    """Import every module of this package once, so that their `@register` calls have run."""
    global _discovered
    if _discovered:
        return
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    _discovered = True


def all_settings() -> dict[str, Setting]:
    """Every registered setting by name."""
    _discover()
    return dict(_SETTINGS)


def get_setting(name: str) -> Setting:
    """The setting registered as `name`; ConfigError naming the field `setting` otherwise."""
    _discover()
    if name not in _SETTINGS:
        raise ConfigError(f"setting: must be one of {sorted(_SETTINGS)}, got {name!r}")
    return _SETTINGS[name]


__all__ = ["Setting", "all_settings", "get_setting", "register"]
