"""Chaining of the data stages: prepare -> generate (watermarked and plain) -> one mix per rho.

Every step is a cached stage, so calling a later step re-runs nothing that is already built; a sweep can call
these from worker processes with folder paths and hashes only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from radio.cache import StageOutput
from radio.data.generate import GenerateConfig, generate_pair
from radio.data.mix import MixConfig, make_mix
from radio.data.prepare import Prepared


def default_prompts(prepared: Prepared, style: str = "auto", root: Path | None = None) -> Path:
    """The prompt source of the tiny bases: the held-out split of the prepared corpus, or for `style="chat"` the
    instruction file made from it (`radio.data.instructions`: the paper's instruction file in miniature)."""
    if prepared.corpus_dir is None:
        raise FileNotFoundError("generate.prompts: local base models have no corpus; give generate.prompts a file")
    if style == "chat":
        from radio.data.instructions import FILE_NAME, build_instructions

        return build_instructions(prepared.corpus_dir, root).path / FILE_NAME
    return prepared.corpus_dir / "heldout"


def generate_sets(
    cfg: GenerateConfig,
    prepared: Prepared,
    key: int | bytes,
    root: Path | None = None,
    model_dir: Path | None = None,
) -> tuple[StageOutput, StageOutput]:
    """A's watermarked and plain sets (model `model_dir` instead of base A when given)."""
    prompts = cfg.prompts if cfg.prompts is not None else default_prompts(prepared, cfg.prompt_style, root)
    return generate_pair(cfg, model_dir or prepared.base_a_dir, key, root, prompts)


def make_mixes(
    cfg: MixConfig, rhos: list[float], wm_dir: Path, plain_dir: Path, root: Path | None = None
) -> dict[float, StageOutput]:
    """One mix per rho in `rhos` (just `cfg.rho` when empty), the other settings of `cfg` shared."""
    values = rhos or [cfg.rho]
    return {rho: make_mix(dataclasses.replace(cfg, rho=rho), wm_dir, plain_dir, root) for rho in values}
