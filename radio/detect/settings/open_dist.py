"""Setting `open-dist`: the distribution-based open-model test (B's top-m mass on each window's green list).

It shares the reading pass of the `open` setting (one forward pass for both when the actor knows that a
distribution test will run: `DetectionActor(reading_top_m=m)` or `run_all`), and keeps the key-independent
aggregation per window in the actor, so that wrong keys cost hashing and a one-dimensional bound only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radio.config import require
from radio.detect.open_model_dist import SETTING, WEIGHTINGS, WindowMass, open_model_dist_test, window_mass
from radio.detect.settings import register
from radio.detect.settings.open_model import reading

if TYPE_CHECKING:
    from radio.detect.actor import DetectionActor
    from radio.detect.spec import DetectionSpec


@dataclass(frozen=True)
class OpenDistOptions:
    """Options of the distribution-based open-model test."""

    in_sequence_exclusion: bool = field(
        default=True, metadata={"help": "skip windows already seen earlier in the same sequence (copying)"}
    )
    top_m: int = field(default=64, metadata={"help": "B's most likely tokens kept per position"})
    weighting: str = field(
        default="mean", metadata={"help": "per-window weight of B's summed mass: mean, sum or sqrt (of positions)"}
    )

    def __post_init__(self) -> None:
        require(isinstance(self.top_m, int) and self.top_m >= 1, "top_m", f"must be an integer >= 1, got {self.top_m}")
        require(self.weighting in WEIGHTINGS, "weighting", f"must be one of {list(WEIGHTINGS)}, got {self.weighting!r}")


@register(SETTING, OpenDistOptions)
def run_open_dist(actor: DetectionActor, spec: DetectionSpec, data: Path | None) -> dict[str, Any]:
    """Open model (reading mode), distribution-based: B's top-m mass on the green lists, aggregated per window."""
    assert data is not None  # needs_data is always true here
    options: OpenDistOptions = spec.options
    wm, phi, info = actor.watermark_inputs(spec, data)
    passed = reading(actor, data, spec.text_split, spec.max_texts, top_m=options.top_m)

    def aggregate() -> WindowMass:
        return window_mass(
            wm, passed, phi=phi, in_sequence_exclusion=options.in_sequence_exclusion, weighting=options.weighting
        )

    phi_key = (spec.phi, spec.phi_split or spec.text_split)
    mass_key = (SETTING, str(data), spec.text_split, spec.max_texts, wm.k, phi_key, options)
    result = open_model_dist_test(
        wm,
        passed,
        phi=phi,
        in_sequence_exclusion=options.in_sequence_exclusion,
        weighting=options.weighting,
        mass=actor.cached(mass_key, aggregate),
        supervised=spec.supervised,
        control=actor.control(spec),
        info=info,
    )
    return actor.watermark_row(result, phi, spec)
