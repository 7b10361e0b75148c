"""Setting `mia`: the membership-inference baseline (no watermark, no key): B's losses on suspected vs fresh text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radio.config import require
from radio.detect.mia import MIA_SCORES, SampleScores, mia_test, sample_scores
from radio.detect.settings import register

if TYPE_CHECKING:
    from radio.detect.actor import DetectionActor
    from radio.detect.spec import DetectionSpec

# Splits of Alice's mix that hold no training record of B by construction (radio.data.mix): supervision degree 0.
NON_MEMBER_SPLITS = ("heldout", "phi")


@dataclass(frozen=True)
class MIAOptions:
    """Options of the MIA baseline."""

    mia_score: str = field(default="zlib", metadata={"help": f"the reported score, one of {list(MIA_SCORES)}"})

    def __post_init__(self) -> None:
        require(self.mia_score in MIA_SCORES, "mia_score", f"must be one of {list(MIA_SCORES)}")


def mia_scores(actor: DetectionActor, data: Path, split: str, max_texts: int | None) -> SampleScores:
    """B's per-sample MIA scores on one split (key-independent, cached in the actor)."""

    def build() -> SampleScores:
        records = actor.records(data, split, max_texts)
        return sample_scores(
            actor.model,
            records.prompts,
            records.answers,
            records.texts,
            batch_size=actor.batch_size,
            pad_id=actor.tokenizer.pad_token_id or 0,
            amp=actor.amp,
        )

    return actor.cached(("mia", str(data), split, max_texts), build)


@register("mia", MIAOptions, keyed=False, supervised=False, unit="samples", metrics=("d",))
def run_mia(actor: DetectionActor, spec: DetectionSpec, data: Path | None) -> dict[str, Any]:
    """MIA: the suspected set (`known`, or spec.split) against fresh non-members (`heldout`), two-sample KS."""
    assert data is not None
    suspected_split = spec.split or "known"
    suspected = mia_scores(actor, data, suspected_split, spec.max_texts)
    reference = mia_scores(actor, data, "heldout", spec.max_texts)
    records = actor.records(data, suspected_split, spec.max_texts)
    d = None if records.member is None else sum(records.member) / len(records.member)
    if d is None and suspected_split in NON_MEMBER_SPLITS:
        d = 0.0  # those splits hold no training record of B by construction of the mix
    results = {score: mia_test(suspected, reference, score, d) for score in ("zlib", "min_k")}
    if spec.options.mia_score not in results:
        results[spec.options.mia_score] = mia_test(suspected, reference, spec.options.mia_score, d)
    row = results[spec.options.mia_score].to_dict()
    row.update({"setting": "mia", "control": actor.control(spec), "split": suspected_split})
    row["scores"] = {name: r.to_dict() for name, r in results.items()}
    return row
