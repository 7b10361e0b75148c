"""Setting `open`: the open-model test in reading mode (B reads Alice's text; its top-1 predictions are scored)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radio.detect.open_model import ReadingPass, open_model_test, read_texts
from radio.detect.settings import register

if TYPE_CHECKING:
    from radio.detect.actor import DetectionActor
    from radio.detect.spec import DetectionSpec


@dataclass(frozen=True)
class OpenOptions:
    """Options of the open-model test."""

    in_sequence_exclusion: bool = field(
        default=True, metadata={"help": "skip windows already seen earlier in the same sequence (copying)"}
    )


def reading(actor: DetectionActor, data: Path, split: str, max_texts: int | None, top_m: int = 0) -> ReadingPass:
    """B's reading pass over the answers of one split (key-independent, cached in the actor).

    The pass keeps B's top max(`top_m`, actor.reading_top_m) tokens per position; a cached pass that kept fewer than
    `top_m` is read again (once). The top-1 predictions are the same whatever it keeps; the result is truncated to
    `top_m` so that a test's numbers do not depend on what other tests asked for.
    """
    keep = max(top_m, getattr(actor, "reading_top_m", 0))

    def build() -> ReadingPass:
        records = actor.records(data, split, max_texts)
        return read_texts(
            actor.model,
            records.answers,
            actor.watermark.k,
            seq_len=actor.seq_len,
            batch_size=actor.batch_size,
            separator_id=actor.tokenizer.eos_token_id,
            pad_id=actor.tokenizer.pad_token_id or 0,
            amp=actor.amp,
            top_m=keep,
        )

    key = ("reading", str(data), split, max_texts, actor.watermark.k)
    return actor.cached(key, build, accept=lambda cached: cached.top_m >= top_m).truncated(top_m)


@register("open", OpenOptions)
def run_open(actor: DetectionActor, spec: DetectionSpec, data: Path | None) -> dict[str, Any]:
    """Open model (reading mode): score B's top-1 predictions on Alice's text, with the tape and phi."""
    assert data is not None  # needs_data is always true here
    wm, phi, info = actor.watermark_inputs(spec, data)
    result = open_model_test(
        wm,
        reading(actor, data, spec.text_split, spec.max_texts),
        phi=phi,
        dedup=spec.dedup,
        in_sequence_exclusion=spec.options.in_sequence_exclusion,
        supervised=spec.supervised,
        control=actor.control(spec),
        mid_p=spec.mid_p,
        info=info,
    )
    return actor.watermark_row(result, phi, spec)
