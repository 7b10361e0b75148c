"""`DetectionSpec`: one test to run on a checkpoint, the fields every setting shares plus the setting's options.

The flat mapping form (preset YAML `detect.tests`, the CLI, result rows) puts both side by side:
`{name: closed-phi, setting: closed, supervised: true, phi: all, max_new_tokens: 48}`. `from_dict` sends the
common keys to `DetectionSpec` and the rest to the setting's options dataclass; a key that neither knows is
rejected, naming it and the setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radio.config import ConfigError, from_dict, require, to_dict
from radio.detect.settings import get_setting
from radio.detect.tape import DEDUP_MODES

KEY_CHOICES = ("correct", "wrong")


@dataclass(frozen=True)
class DetectionSpec:
    """One test to run on the actor's model.

    `setting` names a registered setting (`radio.detect.settings`); `options` is that setting's frozen options
    dataclass (None: its defaults). `data`: a mix folder (None: the actor's default). `split`: where the test
    text comes from (default `known` when supervised, else `heldout`); `phi_split` likewise for phi (default:
    the test text's split). `phi`: None (no filter), "all" (every k-gram of the phi split) or N (its N most
    frequent k-grams). `key`: the correct key, or the `wrong_key_index`-th key derived from it (a control).
    `max_texts` caps the records read. `out_dir`: where to save the result JSON and phi.
    """

    setting: str = "open"
    supervised: bool = False
    data: str | Path | None = None
    split: str | None = None
    phi: int | str | None = None
    phi_split: str | None = None
    dedup: str = "window+token"
    key: str = "correct"
    wrong_key_index: int = 0
    max_texts: int | None = None
    seed: int = 0
    mid_p: bool = False
    out_dir: str | Path | None = None
    name: str = ""
    options: Any = None

    def __post_init__(self) -> None:
        for name in ("data", "out_dir"):  # paths are kept as strings: the spec is a JSON-able record
            value = getattr(self, name)
            if isinstance(value, Path):
                object.__setattr__(self, name, str(value))
        setting = get_setting(self.setting)
        if self.options is None:
            object.__setattr__(self, "options", setting.options())
        require(
            isinstance(self.options, setting.options),
            "options",
            f"setting {self.setting!r} takes {setting.options.__name__}, got {type(self.options).__name__}",
        )
        require(self.dedup in DEDUP_MODES, "dedup", f"must be one of {list(DEDUP_MODES)}, got {self.dedup!r}")
        require(self.key in KEY_CHOICES, "key", f"must be one of {list(KEY_CHOICES)}, got {self.key!r}")
        require(self.wrong_key_index >= 0, "wrong_key_index", f"must be >= 0, got {self.wrong_key_index}")
        require(
            self.phi is None or self.phi == "all" or (isinstance(self.phi, int) and self.phi >= 1),
            "phi",
            f"must be null, 'all' or a top-N count >= 1, got {self.phi!r}",
        )
        require(self.max_texts is None or self.max_texts >= 1, "max_texts", f"must be >= 1, got {self.max_texts}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectionSpec:
        """Build from a flat mapping; unknown keys or wrong types raise ConfigError naming the field."""
        data = dict(data)
        if "options" in data:
            raise ConfigError("options: give the setting's options as keys beside the common ones")
        setting = get_setting(data.get("setting", cls.setting))
        common = {f.name for f in dataclasses.fields(cls)} - {"options"}
        own = {f.name for f in dataclasses.fields(setting.options)}
        unknown = sorted(set(data) - common - own)
        if unknown:
            raise ConfigError(
                f"{unknown[0]}: not a field of a test with setting {setting.name!r}; allowed: {sorted(common | own)}"
            )
        options = from_dict(setting.options, {k: v for k, v in data.items() if k in own}, where=setting.name)
        return from_dict(cls, {**{k: v for k, v in data.items() if k in common}, "options": options})

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON-able form (`from_dict(spec.to_dict()) == spec`)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "options"}
        return {**to_dict(out), **to_dict(self.options)}

    @property
    def text_split(self) -> str:
        """The split holding the test text (and the prompts of the closed setting)."""
        return self.split or ("known" if self.supervised else "heldout")
