"""Closed-model radioactivity test: B is only queried for text; its answers are scored as one pooled test.

`generate_answers` asks B (plain sampling with radio's temperature and top-p, or greedy; never a watermark) to
answer prompts, reusing the batched generation loop of `radio.data.generate`. Answers produced elsewhere (an API)
come in as token-id lists, e.g. read from JSONL with `radio.detect.records.read_jsonl_records`.

`closed_model_test` scores B's answer tokens with the shared text-detection path (`score_tokens` ->
`score_with_tape`): windows reach into the prompt, tokens whose window occurs in the answer's own prompt (or in any
prompt of the test) are skipped, optionally only windows in phi are kept, and the tape deduplicates across the
whole test.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from radio.detect.phi import Phi
from radio.detect.result import RadioactivityResult
from radio.detect.text import pvalue_band, pvalue_curve, result_from_scores, score_tokens
from radio.watermark import Watermark, plain_generation_kwargs


@dataclass(frozen=True)
class Answers:
    """B's answers (token ids, eos excluded) to `prompts`, and how fast they came."""

    prompts: list[list[int]]
    answers: list[list[int]]
    tokens_per_s: float
    wall_s: float
    sampling: str

    @property
    def n_tokens(self) -> int:
        """Answer tokens in all."""
        return sum(map(len, self.answers))


def generate_answers(
    model,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    greedy: bool = False,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int = 0,
) -> Answers:
    """B's answers to `prompts` (token-id lists) through `model.generate` only: plain sampling or greedy."""
    from radio.data.generate import GenerateConfig, sample_answers
    from radio.data.prompts import Prompt
    from radio.detect.open_model import model_device

    if not prompts:
        raise ValueError("prompts: no prompt to ask the model")
    cfg = GenerateConfig(
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        device=str(model_device(model)),
    )
    kwargs = {"do_sample": False} if greedy else plain_generation_kwargs(temperature=temperature, top_p=top_p)
    prompt_objects = [Prompt("", [int(t) for t in p]) for p in prompts]
    start = time.perf_counter()
    answers, _, speed = sample_answers(model, tokenizer, prompt_objects, kwargs, cfg, desc="closed-model answers")
    wall = time.perf_counter() - start
    return Answers(
        prompts=[list(p.ids) for p in prompt_objects],
        answers=answers,
        tokens_per_s=float(speed.get("tokens_per_s", 0.0)),
        wall_s=wall,
        sampling="greedy" if greedy else f"sample(t={temperature}, top_p={top_p})",
    )


def closed_model_test(
    wm: Watermark,
    answers: Sequence[Sequence[int]],
    prompts: Sequence[Sequence[int]] | None = None,
    *,
    phi: Phi | None = None,
    dedup: str = "window+token",
    prompt_exclusion: str = "own",
    supervised: bool = True,
    control: str = "none",
    mid_p: bool = False,
    tokens_per_s: float = float("nan"),
    wall_s: float = 0.0,
    curve_points: int = 50,
    info: dict[str, object] | None = None,
) -> RadioactivityResult:
    """One pooled closed-model test of B's `answers` to `prompts` under `wm`; see the module docstring.

    `tokens_per_s` / `wall_s` describe how the answers were obtained (generation), when known; scoring time is
    added to `wall_s`.
    """
    if phi is not None and phi.k != wm.k:
        raise ValueError(f"phi holds {phi.k}-grams but the watermark has k={wm.k}")
    if not answers:
        raise ValueError("answers: no answer to score")
    start = time.perf_counter()
    scored = score_tokens(wm, answers, prompts, dedup, None if phi is None else phi.grams, prompt_exclusion)
    detection = result_from_scores(
        wm,
        scored,
        dedup=dedup,
        prompt_exclusion=prompt_exclusion if prompts is not None else "none",
        phi_size=None if phi is None else phi.size,
        mid_p=mid_p,
        test="closed",
    )
    return RadioactivityResult(
        detection=detection,
        setting="closed",
        supervised=supervised,
        control=control,
        phi=None if phi is None else phi.describe(),
        tokens_per_s=tokens_per_s,
        wall_s=wall_s + time.perf_counter() - start,
        curve=pvalue_curve(wm, scored.scores, curve_points),
        curve_band=pvalue_band(wm, scored.scores, curve_points),
        info={"n_answers": len(answers), **(info or {})},
    )
