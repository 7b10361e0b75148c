"""Presets: YAML files of sections, found by name in an audit's `presets/` folder or given by path.

One loader for every audit. A preset may start from another one with `extends: NAME` (a name in the same folder,
or a path relative to the file): each top-level section it gives replaces the parent's whole section, and the
sections it leaves out are the parent's. The merged sections go to the audit's config dataclass, which rejects
unknown keys naming the field; this module knows no audit and loads only PyYAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweeps.engine.errors import ConfigError


def preset_names(folder: Path) -> list[str]:
    """The presets of `folder` by name (file stems), sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def preset_path(name_or_path: str, folder: Path, where: str = "--preset", relative_to: Path | None = None) -> Path:
    """The file of a preset given by name (`folder/NAME.yaml`) or by path (anything with a suffix); a ConfigError
    naming `where` and the known presets when a name is unknown, or naming the file when it is missing."""
    path = Path(name_or_path).expanduser()
    if not path.suffix:
        path = Path(folder) / f"{name_or_path}.yaml"
        if not path.is_file():
            known = preset_names(folder)
            raise ConfigError(f"{where} {name_or_path}: unknown preset; known: {known}, or a path to a YAML file")
        return path
    if relative_to is not None and not path.is_absolute():
        path = relative_to.parent / path
    if not path.is_file():
        raise ConfigError(f"{where} {name_or_path}: {path} not found")
    return path


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path`, with an error naming the file when it is not valid YAML or not a mapping."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_sections(name_or_path: str, folder: Path) -> tuple[Path, dict[str, Any]]:
    """The preset's file and its sections, those of the presets it extends filled in under them."""
    path = preset_path(name_or_path, folder)
    return path, _sections(path, folder, ())


def _sections(path: Path, folder: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    data = read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"{path}: extends: must be a preset name or a path, got {parent!r}")
    parent_path = preset_path(parent, folder, f"{path}: extends:", relative_to=path)
    if parent_path.resolve() in {p.resolve() for p in (*chain, path)}:
        raise ConfigError(f"{path}: extends: {parent} leads back to itself")
    return {**_sections(parent_path, folder, (*chain, path)), **data}
