"""One registry type for everything radio looks up by name: watermark schemes and hashers, detection settings,
fine-tune methods, image generators, object detectors, image and text embedders, clustering methods.

    SCHEMES = Registry("scheme")

    @SCHEMES.register("kgw")
    class KGW(Scheme): ...

    SCHEMES.get("kgw")               # the class; ConfigError "scheme: unknown scheme 'x'; known: [...]"
    SCHEMES.get(name, field="watermark.scheme")   # the error names the caller's field instead
    SCHEMES.names()                  # sorted names

A registry can load its entries lazily: `modules` are imported on the first lookup (generators keep diffusers out
of `import radio`), and `package` imports every module of a package (a detection setting is one new file there,
touching no other). A registry is a read-only mapping (`name in R`, `R[name]`, `sorted(R)`), so callers and
validators use the same names the registry holds.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from radio.config import ConfigError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Entries of one kind by name; `kind` and `field` name them in errors (field defaults to kind)."""

    def __init__(
        self,
        kind: str,
        *,
        field: str | None = None,
        modules: Sequence[str] = (),
        package: str | None = None,
        error: type[Exception] = ConfigError,
    ) -> None:
        self.kind = kind
        self.field = field or kind
        self._modules = tuple(modules)
        self._package = package
        self._error = error
        self._entries: dict[str, T] = {}
        self._loaded = not (self._modules or self._package)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding the decorated object under `name`; registering another object under a taken name
        is an error (the same object again is not: a module imported twice)."""

        def decorate(value: T) -> T:
            self.add(name, value)
            return value

        return decorate

    def add(self, name: str, value: T) -> None:
        """Add `value` under `name` (see `register`)."""
        if name in self._entries and self._entries[name] is not value:
            raise ValueError(f"{self.kind} {name!r}: registered twice")
        self._entries[name] = value

    def remove(self, name: str) -> None:
        """Take `name` out (a test's temporary entry)."""
        self._entries.pop(name, None)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # before importing: the modules' own lookups must not recurse
        for module in self._modules:
            importlib.import_module(module)
        if self._package is not None:
            package = importlib.import_module(self._package)
            for info in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{self._package}.{info.name}")

    def get(self, name: str, field: str | None = None) -> T:  # type: ignore[override]
        """The entry registered as `name`; an error naming `field` (default: the registry's) and the known names."""
        self._load()
        if name not in self._entries:
            raise self._error(f"{field or self.field}: unknown {self.kind} {name!r}; known: {self.names()}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load()
        return sorted(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries
