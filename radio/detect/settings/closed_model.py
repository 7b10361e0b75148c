"""Setting `closed`: the closed-model test (B answers Alice's prompts, or its answers come from a JSONL file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radio.config import require
from radio.detect.closed_model import Answers, closed_model_test, generate_answers
from radio.detect.records import read_jsonl_records
from radio.detect.settings import register
from radio.detect.text import PROMPT_EXCLUSION_MODES

if TYPE_CHECKING:
    from radio.detect.actor import DetectionActor
    from radio.detect.spec import DetectionSpec


@dataclass(frozen=True)
class ClosedOptions:
    """Options of the closed-model test. `answers`: a JSONL file of answers produced elsewhere (an API)."""

    prompt_exclusion: str = field(
        default="own",
        metadata={
            "help": f"skip windows of the answer's own prompt or of any prompt, one of {list(PROMPT_EXCLUSION_MODES)}"
        },
    )
    answers: str | None = field(default=None, metadata={"help": "JSONL of answers produced elsewhere"})
    answer_field: str = field(default="answer_ids", metadata={"help": "JSONL field: token ids, or text (tokenized)"})
    # The CLI leaves prompts out unless asked (`--prompt-field`); a preset reads them from prompt_ids by default.
    prompt_field: str | None = field(
        default="prompt_ids",
        metadata={"help": "JSONL field with the prompt (enables prompt exclusion)", "cli_default": None},
    )
    greedy: bool = field(default=False, metadata={"help": "greedy answers instead of sampling"})
    max_new_tokens: int = field(default=64, metadata={"help": "longest answer B gives"})

    def __post_init__(self) -> None:
        require(
            self.prompt_exclusion in PROMPT_EXCLUSION_MODES,
            "prompt_exclusion",
            f"must be one of {list(PROMPT_EXCLUSION_MODES)}, got {self.prompt_exclusion!r}",
        )
        require(self.max_new_tokens >= 1, "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")


def _needs_data(spec: DetectionSpec) -> bool:
    # Answers from a file need Alice's mix only to build phi from it.
    return spec.options.answers is None or spec.phi is not None


def answers(actor: DetectionActor, data: Path | None, spec: DetectionSpec) -> Answers:
    """B's answers to the prompts of the test split (cached), or the answers read from `options.answers`."""
    opts: ClosedOptions = spec.options
    if opts.answers is not None:
        path = Path(opts.answers).expanduser()
        text_fields = opts.answer_field not in ("answer_ids", "token_ids")
        got = read_jsonl_records(
            path, opts.answer_field, opts.prompt_field, actor.model_dir if text_fields else None, actor.vocab_size
        )
        prompts = got.prompts if got.prompts is not None else [[] for _ in got.sequences]
        return Answers(prompts, got.sequences, float("nan"), 0.0, f"jsonl:{path.name}")
    assert data is not None

    def build() -> Answers:
        records = actor.records(data, spec.text_split, spec.max_texts)
        return generate_answers(
            actor.model,
            actor.tokenizer,
            records.prompts,
            max_new_tokens=opts.max_new_tokens,
            batch_size=actor.batch_size,
            greedy=opts.greedy,
            temperature=actor.watermark.temperature,
            top_p=actor.watermark.top_p,
            seed=spec.seed,
        )

    key = ("answers", str(data), spec.text_split, spec.max_texts, opts.greedy, opts.max_new_tokens, spec.seed)
    return actor.cached(key, build)


@register("closed", ClosedOptions, needs_data=_needs_data)
def run_closed(actor: DetectionActor, spec: DetectionSpec, data: Path | None) -> dict[str, Any]:
    """Closed model: score B's answers to Alice's prompts (prompt exclusion, phi, tape), pooled into one test."""
    wm, phi, info = actor.watermark_inputs(spec, data)
    got = answers(actor, data, spec)
    result = closed_model_test(
        wm,
        got.answers,
        got.prompts,
        phi=phi,
        dedup=spec.dedup,
        prompt_exclusion=spec.options.prompt_exclusion,
        supervised=spec.supervised,
        control=actor.control(spec),
        mid_p=spec.mid_p,
        tokens_per_s=got.tokens_per_s,
        wall_s=got.wall_s,
        info={**info, "sampling": got.sampling},
    )
    return actor.watermark_row(result, phi, spec)
