"""`radio prepare`, `radio generate`, `radio mix`: the data pipeline from a YAML file; outputs printed as JSON.

One YAML file serves all three commands (and `radio finetune`, which reads its own `finetune:` section); every
section is optional and defaults to the embedded tiny setup::

    cache_root: /scratch/radio-cache      # default: $RADIO_CACHE or ~/.cache/radio
    prepare:  {preset: tiny-1m, corpus: {source: stdlib}, pretrain: {steps: 400}}
    generate: {n_watermarked: 2000, n_plain: 1200, max_new_tokens: 64,
               watermark: {scheme: kgw, k: 2, gamma: 0.25, delta: 3.0}}
    mix:      {d: 1.0, train_size: 1000, known_size: 50, heldout_size: 400}
    rhos:     [0.0, 0.05, 1.0]            # `radio mix` builds one mix per rho (mix.rho when empty)
    model: /models/llama-7b               # optional: generate with this local model instead of base A
    watermarked_set: ...                  # optional: `radio mix` from these generated sets (no key needed)
    plain_set: ...

Each command runs the earlier stages it needs; they are cache hits once built. The watermark key comes from
`--key-file PATH` or $RADIO_WATERMARK_KEY, never from the command line or the YAML file.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radio.config import from_dict, load_yaml, require
from radio.data.generate import GenerateConfig
from radio.data.mix import MixConfig
from radio.data.prepare import PrepareConfig

# Sections read by other commands from the same file: accepted here, and left to their owners to validate.
_OTHER_SECTIONS = ("finetune", "detect", "sweep", "tracking")


@dataclass(frozen=True)
class PipelineConfig:
    """The data-pipeline part of a radio YAML file."""

    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    rhos: list[float] = field(default_factory=list)
    cache_root: Path | None = None
    model: Path | None = None
    watermarked_set: Path | None = None
    plain_set: Path | None = None

    def __post_init__(self) -> None:
        for i, rho in enumerate(self.rhos):
            require(0.0 <= rho <= 1.0, f"rhos[{i}]", f"must be in [0, 1], got {rho}")
        require(
            (self.watermarked_set is None) == (self.plain_set is None),
            "plain_set" if self.plain_set is None else "watermarked_set",
            "give both watermarked_set and plain_set, or neither",
        )


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    """Parse the YAML file at `path`; errors name the file and the offending field."""
    data: dict[str, Any] = {k: v for k, v in load_yaml(path).items() if k not in _OTHER_SECTIONS}
    try:
        return from_dict(PipelineConfig, data, where="config")
    except ValueError as err:
        raise type(err)(f"{path}: {err}") from err


def _emit(payload: dict[str, Any]) -> int:
    print(json.dumps(payload, indent=2, sort_keys=True, default=str), file=sys.stdout)
    return 0


def _root(cfg: PipelineConfig) -> Path | None:
    return cfg.cache_root.expanduser().resolve() if cfg.cache_root else None


def _prepare(cfg: PipelineConfig):
    from radio.data.prepare import prepare

    return prepare(cfg.prepare, _root(cfg))


def _key(args: argparse.Namespace) -> int | bytes:
    from radio.keys import load_key

    return load_key(args.key_file)


def _generate(cfg: PipelineConfig, args: argparse.Namespace):
    from radio.data.pipeline import generate_sets

    if cfg.model is not None and not cfg.model.expanduser().is_dir():
        raise FileNotFoundError(f"model {cfg.model}: folder not found")
    key = _key(args)  # before any long step, so a missing key fails fast
    prepared = _prepare(cfg)
    return generate_sets(cfg.generate, prepared, key, _root(cfg), cfg.model)


def run_prepare(args: argparse.Namespace) -> int:
    """`radio prepare`: corpus, tokenizer, bases A and B."""
    cfg = load_pipeline_config(args.config)
    prepared = _prepare(cfg)
    return _emit(
        {
            "corpus": prepared.corpus_dir,
            "tokenizer": prepared.tokenizer_dir,
            "base_a": prepared.base_a_dir,
            "base_b": prepared.base_b_dir,
            "hashes": prepared.hashes,
            "vocab_size": prepared.vocab_size,
            "cached": prepared.cached,
        }
    )


def run_generate(args: argparse.Namespace) -> int:
    """`radio generate`: A's watermarked and plain sets."""
    cfg = load_pipeline_config(args.config)
    wm, plain = _generate(cfg, args)
    return _emit(
        {
            "watermarked": wm.path,
            "plain": plain.path,
            "hashes": {"watermarked": wm.hash, "plain": plain.hash},
            "counts": {"watermarked": wm.manifest["counts"]["records"], "plain": plain.manifest["counts"]["records"]},
            "cached": wm.cached and plain.cached,
        }
    )


def run_mix(args: argparse.Namespace) -> int:
    """`radio mix`: one train/known/heldout mix per rho."""
    from radio.data.pipeline import make_mixes

    cfg = load_pipeline_config(args.config)
    if cfg.watermarked_set is not None:
        wm_dir, plain_dir = cfg.watermarked_set, cfg.plain_set
        for name, path in (("watermarked_set", wm_dir), ("plain_set", plain_dir)):
            if not Path(path).expanduser().exists():  # type: ignore[arg-type]
                raise FileNotFoundError(f"{name} {path}: not found")
    else:
        wm, plain = _generate(cfg, args)
        wm_dir, plain_dir = wm.path, plain.path
    mixes = make_mixes(cfg.mix, cfg.rhos, wm_dir, plain_dir, _root(cfg))  # type: ignore[arg-type]
    return _emit(
        {
            "mixes": {str(rho): out.path for rho, out in mixes.items()},
            "hashes": {str(rho): out.hash for rho, out in mixes.items()},
            "counts": {str(rho): out.manifest["counts"] for rho, out in mixes.items()},
        }
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `prepare`, `generate` and `mix` subcommands."""
    specs = (
        ("prepare", run_prepare, "build the corpus, the tokenizer and base models A and B", False),
        ("generate", run_generate, "model A answers prompts, with and without the watermark", True),
        ("mix", run_mix, "training mixes at each rho, known and held-out watermarked sets", True),
    )
    for name, handler, help_text, needs_key in specs:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--config", type=Path, required=True, help="YAML file (see `radio.cli.pipeline`)")
        if needs_key:
            parser.add_argument(
                "--key-file", type=Path, default=None, help="watermark key file (default: $RADIO_WATERMARK_KEY)"
            )
        parser.set_defaults(handler=handler)
