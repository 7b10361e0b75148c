"""Setting `open-ref`: the reference-calibrated reading test (B's excess over a reference model on the green lists).

The distribution-based test of `open-dist` with weights max(p_B - p_R, 0) (`radio.detect.open_model_dist`), R a
model that never saw the key: Alice's A or Bob's base model (`radio.detect.reference`). It shares B's reading pass
with the `open` and `open-dist` tests; R reads the same chunks once per split, and the per-window aggregation is kept
in the actor, so wrong keys cost hashing and a one-dimensional bound only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from radio.config import require
from radio.detect.open_model_dist import WEIGHTINGS, WindowMass, open_model_dist_test, window_mass
from radio.detect.reference import reference_probs
from radio.detect.settings import register
from radio.detect.settings.open_model import reading

if TYPE_CHECKING:
    from radio.detect.actor import DetectionActor
    from radio.detect.spec import DetectionSpec

SETTING = "open-ref"
EXCESS = ("positive", "signed")


@dataclass(frozen=True)
class OpenRefOptions:
    """Options of the reference-calibrated open-model test."""

    reference: str = field(
        default="",
        metadata={
            "help": "model folder of the reference R, sharing B's tokenizer and never trained on text watermarked "
            "with this key: Alice's A or Bob's base model (in a sweep: `alice` or `bob-base`)"
        },
    )
    in_sequence_exclusion: bool = field(
        default=True, metadata={"help": "skip windows already seen earlier in the same sequence (copying)"}
    )
    top_m: int = field(default=64, metadata={"help": "B's most likely tokens kept per position"})
    weighting: str = field(
        default="sum", metadata={"help": "per-window weight of B's summed excess: sum, mean or sqrt (of positions)"}
    )
    excess: str = field(
        default="positive",
        metadata={
            "help": "weights: positive (B's excess over R, max(p_B - p_R, 0)) or signed (p_B - p_R; independent "
            "null draws only: hashing radio, or Aaronson)"
        },
    )

    def __post_init__(self) -> None:
        require(isinstance(self.reference, str) and self.reference != "", "reference", "a reference model is needed")
        require(isinstance(self.top_m, int) and self.top_m >= 1, "top_m", f"must be an integer >= 1, got {self.top_m}")
        require(self.weighting in WEIGHTINGS, "weighting", f"must be one of {list(WEIGHTINGS)}, got {self.weighting!r}")
        require(self.excess in EXCESS, "excess", f"must be one of {list(EXCESS)}, got {self.excess!r}")


@register(SETTING, OpenRefOptions)
def run_open_ref(actor: DetectionActor, spec: DetectionSpec, data: Path | None) -> dict[str, Any]:
    """Open model (reading mode), reference-calibrated: B's top-m excess over R on the green lists, per window."""
    assert data is not None  # needs_data is always true here
    options: OpenRefOptions = spec.options
    wm, phi, info = actor.watermark_inputs(spec, data)
    passed = reading(actor, data, spec.text_split, spec.max_texts, top_m=options.top_m)
    reference_dir = Path(options.reference).expanduser()

    def read_reference() -> torch.Tensor:
        records = actor.records(data, spec.text_split, spec.max_texts)
        return reference_probs(
            actor.reference_model(reference_dir),
            records.answers,
            passed,
            batch_size=actor.batch_size,
            separator_id=actor.tokenizer.eos_token_id,
            pad_id=actor.tokenizer.pad_token_id or 0,
            amp=actor.amp,
        )

    text_key = (str(data), spec.text_split, spec.max_texts, wm.k, options.top_m)
    ref = actor.cached((SETTING, "reference", str(reference_dir), *text_key), read_reference)

    def aggregate() -> WindowMass:
        return window_mass(
            wm,
            passed,
            phi=phi,
            in_sequence_exclusion=options.in_sequence_exclusion,
            weighting=options.weighting,
            reference=ref,
            signed=options.excess == "signed",
        )

    phi_key = (spec.phi, spec.phi_split or spec.text_split)
    result = open_model_dist_test(
        wm,
        passed,
        phi=phi,
        in_sequence_exclusion=options.in_sequence_exclusion,
        mass=actor.cached((SETTING, *text_key, phi_key, options), aggregate),
        supervised=spec.supervised,
        control=actor.control(spec),
        info={**info, "reference": str(reference_dir)},
    )
    return actor.watermark_row(result, phi, spec)
