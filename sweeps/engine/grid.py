"""The sweep grid: a base point, axes varied one at a time (or their product), seeds, command-line overrides.

Every trial gets a deterministic id: a hash of its params and of the sweep's identity constants (the values that
change a trial's result, such as a data hash or a key fingerprint). Never the sweep id, the resources or how a
secret was passed: a finished trial is found again by any later sweep that contains the same point. An axis at
its inert value (`Grid.inert`: the value that leaves a trial as it was before the axis existed) is left out of that
hash, so adding an axis to a sweep keeps the id, and the recorded results, of every trial it already had.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import yaml

from stagestore import config_hash
from sweeps.engine.errors import ConfigError

_SCALARS = (bool, int, float, str, type(None))


def _canonical(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def trial_id_of(params: Mapping[str, Any], identity: Mapping[str, Any] | None = None) -> str:
    """Deterministic trial id: 12 hex chars of the hash of the params and the identity constants."""
    return config_hash({"params": dict(params), "identity": dict(identity or {})})[:12]


def _coerce(axis: str, value: Any, like: Any) -> Any:
    """Convert `value` (possibly a CLI string) to the type of the axis' base value `like`."""
    if isinstance(like, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"axis {axis}: {value!r} is not a boolean")
    if isinstance(like, int):
        if isinstance(value, bool):
            raise ConfigError(f"axis {axis}: {value!r} is not an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise ConfigError(f"axis {axis}: {value!r} is not an integer") from None
    if isinstance(like, float):
        if isinstance(value, bool):
            raise ConfigError(f"axis {axis}: {value!r} is not a number")
        try:
            number = float(value if isinstance(value, int | float) else str(value).strip())
        except ValueError:
            raise ConfigError(f"axis {axis}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"axis {axis}: {value!r} is not a finite number")
        return number
    if isinstance(like, str):
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"axis {axis}: {value!r} is not a string")
        return str(value)
    # base value None: infer the type from the text (int, then float such as 1e-4, then a YAML scalar)
    if isinstance(value, str):
        text = value.strip()
        for parse in (int, float):
            with contextlib.suppress(ValueError):
                return parse(text)
        return yaml.safe_load(text)
    return value


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Trial:
    """One point of the sweep: its params (seed included), deterministic id, and id of its seedless point."""

    trial_id: str
    params: dict[str, Any]
    point_id: str


@dataclass(frozen=True)
class Grid:
    """A base point and the axes varied around it.

    mode "one_at_a_time" (the paper's ablations): the base point, plus for each axis in `vary` and each of its
    values, the base point with that one axis changed. mode "cartesian": the full product of the axes.
    `include` adds explicit points (partial overrides of the base, e.g. controls). `seeds` replicates every
    point; `seed_key` names the seed param. `checks` maps an axis to a validator that raises ValueError (or
    returns False) for an impossible value. `inert` maps an axis to its value that changes nothing (e.g. zero
    purification steps): a trial's id leaves the axis out at that value. Points are deduplicated; order is
    deterministic.
    """

    base: Mapping[str, Any]
    vary: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    mode: Literal["one_at_a_time", "cartesian"] = "one_at_a_time"
    seeds: Sequence[int] = (0,)
    include: Sequence[Mapping[str, Any]] = ()
    checks: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    seed_key: str = "seed"
    inert: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown_inert = sorted(set(self.inert) - set(self.base))
        if unknown_inert:
            raise ConfigError(f"grid inert: unknown axis(es) {unknown_inert}; known axes: {sorted(self.base)}")
        if self.mode not in ("one_at_a_time", "cartesian"):
            raise ConfigError(f"grid mode: {self.mode!r} is not one of ['one_at_a_time', 'cartesian']")
        if self.seed_key in self.base:
            raise ConfigError(f"grid base: {self.seed_key!r} is the replication axis; set it with seeds=")
        for name, value in self.base.items():
            if not isinstance(name, str) or not isinstance(value, _SCALARS):
                raise ConfigError(f"axis {name}: base value {value!r} must be a scalar (bool/int/float/str/None)")
            self._check(name, value)
        unknown = sorted(set(self.vary) - set(self.base))
        if unknown:
            raise ConfigError(f"grid vary: unknown axis(es) {unknown}; known axes: {sorted(self.base)}")
        vary = {}
        for name, values in self.vary.items():
            if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
                raise ConfigError(f"axis {name}: expected a non-empty list of values, got {values!r}")
            coerced = [_coerce(name, v, self.base[name]) for v in values]
            for v in coerced:
                self._check(name, v)
            vary[name] = tuple(dict.fromkeys(coerced))  # dedup, keep order
        object.__setattr__(self, "vary", vary)
        seeds = tuple(self.seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
            raise ConfigError(f"seeds: expected a non-empty list of integers, got {self.seeds!r}")
        object.__setattr__(self, "seeds", tuple(dict.fromkeys(seeds)))
        include = []
        for i, point in enumerate(self.include):
            bad = sorted(set(point) - set(self.base))
            if bad:
                raise ConfigError(f"grid include[{i}]: unknown axis(es) {bad}; known axes: {sorted(self.base)}")
            coerced = {k: _coerce(k, v, self.base[k]) for k, v in point.items()}
            for k, v in coerced.items():
                self._check(k, v)
            include.append(coerced)
        object.__setattr__(self, "include", tuple(include))

    def _check(self, axis: str, value: Any) -> None:
        check = self.checks.get(axis)
        if check is None:
            return
        try:
            ok = check(value)
        except (ValueError, TypeError, ConfigError) as err:
            raise ConfigError(f"axis {axis}: invalid value {value!r}: {err}") from None
        if ok is False:
            raise ConfigError(f"axis {axis}: invalid value {value!r}")

    @property
    def axes(self) -> list[str]:
        return list(self.base)

    def points(self) -> list[dict[str, Any]]:
        """The distinct seedless points, in a deterministic order (base point first)."""
        base = dict(self.base)
        candidates: list[dict[str, Any]] = []
        if self.mode == "cartesian":
            names = list(self.vary)
            for combo in itertools.product(*(self.vary[n] for n in names)):
                candidates.append({**base, **dict(zip(names, combo, strict=True))})
        else:
            candidates.append(base)
            for name, values in self.vary.items():
                candidates.extend({**base, name: value} for value in values)
        candidates.extend({**base, **point} for point in self.include)
        unique: dict[str, dict[str, Any]] = {}
        for point in candidates:
            unique.setdefault(_canonical(point), point)
        return list(unique.values())

    def trials(self, identity: Mapping[str, Any] | None = None) -> list[Trial]:
        """Every (point, seed) pair as a Trial whose id hashes its params and the `identity` constants."""
        trials = []
        for point in self.points():
            hashed = {k: v for k, v in point.items() if not (k in self.inert and v == self.inert[k])}
            point_id = trial_id_of(hashed, identity)
            for seed in self.seeds:
                params = {**point, self.seed_key: seed}
                trial_id = trial_id_of({**hashed, self.seed_key: seed}, identity)
                trials.append(Trial(trial_id=trial_id, params=params, point_id=point_id))
        return trials

    def varied_axes(self) -> list[str]:
        """The axes that take more than one value (from the preset or the command line), in declaration order."""
        return [name for name, values in self.vary.items() if len(values) > 1]

    def label(self, params: Mapping[str, Any]) -> str:
        """A short name of a trial by what varies, then its seed, e.g. `rho=0.25 seed=0`.

        One at a time: the axes off the base point (`base` for the base point itself); Cartesian: every varied
        axis.
        """
        varied = set(self.varied_axes()) if self.mode == "cartesian" else set()
        parts = [
            f"{k}={_short(params[k])}" for k in self.base if k in params and (k in varied or params[k] != self.base[k])
        ]
        if self.seed_key in params:
            parts.append(f"{self.seed_key}={params[self.seed_key]}")
        return " ".join(parts if len(parts) > (self.seed_key in params) else ["base", *parts])

    def with_overrides(self, overrides: str | Sequence[str] | None) -> Grid:
        """Apply CLI overrides: `axis=v` fixes an axis at v (no longer varied); `axis=v1,v2,...` varies it
        over the values (the base value becomes v1 unless it is among them); `seed=0,1,2` sets the seeds."""
        items = parse_overrides(overrides)
        base, vary, seeds = dict(self.base), dict(self.vary), self.seeds
        for name, texts in items:
            if name == self.seed_key:
                try:
                    seeds = tuple(int(t) for t in texts)
                except ValueError:
                    raise ConfigError(f"axis {name}: seeds must be integers, got {','.join(texts)}") from None
                continue
            if name not in base:
                known = sorted([*base, self.seed_key])
                raise ConfigError(f"override {name}=...: unknown axis {name!r}; known axes: {known}")
            like = base[name]
            if like is None and name in vary and vary[name]:
                like = next((v for v in vary[name] if v is not None), None)
            values = [_coerce(name, t, like) for t in texts]
            if len(values) == 1:
                base[name] = values[0]
                vary.pop(name, None)
            else:
                if base[name] not in values:
                    base[name] = values[0]
                vary[name] = values
        return replace(self, base=base, vary=vary, seeds=seeds)

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "base": dict(self.base),
            "vary": {k: list(v) for k, v in self.vary.items()},
            "seeds": list(self.seeds),
            "include": [dict(p) for p in self.include],
        }


def parse_overrides(overrides: str | Sequence[str] | None) -> list[tuple[str, list[str]]]:
    """Parse `"rho=0,0.5,1 lr=1e-4"` (or a list of such words) into [(axis, [value texts])]."""
    if overrides is None:
        return []
    words = shlex.split(overrides) if isinstance(overrides, str) else [w for o in overrides for w in shlex.split(o)]
    parsed = []
    for word in words:
        name, sep, values = word.partition("=")
        name = name.strip()
        texts = [t.strip() for t in values.split(",")]
        if not sep or not name or not values.strip() or any(t == "" for t in texts):
            raise ConfigError(f"override {word!r}: expected AXIS=VALUE or AXIS=V1,V2,...")
        parsed.append((name, texts))
    return parsed


@dataclass(frozen=True)
class GridSection:
    """A preset's `grid:` section as YAML holds it: the base point, axes varied around it, extra points, seeds.

    A sweep subclasses it with `AXES` (every axis it knows) and `AXIS_DEFAULTS` (axes a preset may leave out of
    the base point, with their value then: the grid's inert values, left out of trial ids); errors name the preset
    field.
    """

    AXES: ClassVar[tuple[str, ...]] = ()
    AXIS_DEFAULTS: ClassVar[dict[str, Any]] = {}

    base: dict[str, Any]
    vary: dict[str, list[Any]] = field(default_factory=dict)
    include: list[dict[str, Any]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    mode: str = "one_at_a_time"

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", {**self.AXIS_DEFAULTS, **self.base})
        missing = sorted(set(self.AXES) - set(self.base))
        unknown = sorted(set(self.base) - set(self.AXES))
        if missing:
            raise ConfigError(f"grid.base: missing axes {missing}")
        if unknown:
            raise ConfigError(f"grid.base: unknown axes {unknown}; known: {list(self.AXES)}")
        if self.mode not in ("one_at_a_time", "cartesian"):
            raise ConfigError("grid.mode: must be one_at_a_time or cartesian")
        if not self.seeds:
            raise ConfigError("grid.seeds: needs at least one seed")

    def to_grid(self, checks: Mapping[str, Callable[[Any], Any]] | None = None) -> Grid:
        """The engine's `Grid` of this section, with the sweep's value checks per axis."""
        return Grid(
            base=self.base,
            vary=self.vary,
            mode=self.mode,  # type: ignore[arg-type]
            seeds=tuple(self.seeds),
            include=self.include,
            checks=dict(checks or {}),
            inert=dict(self.AXIS_DEFAULTS),
        )
