"""The base-model stage: a tiny preset pre-trained on one half of the corpus, saved with its tokenizer.

Output `base/<hash>/` is a `save_pretrained` folder (model and tokenizer together), loadable with
`radio.models.load_model` / `load_tokenizer`; its manifest counts hold the parameter count, the logits width
(`vocab_size`) and the final train and held-out losses.
"""

from __future__ import annotations

import logging
from pathlib import Path

from radio.cache import StageOutput, run_stage
from radio.config import to_dict
from radio.models.loading import load_tokenizer, model_vocab_size
from radio.models.presets import build_model, count_parameters, get_preset
from radio.models.pretrain import PretrainConfig, pretrain, token_stream

log = logging.getLogger(__name__)


def base_stage_key(
    preset: str, half: str, seed: int, cfg: PretrainConfig, corpus: StageOutput, tokenizer: StageOutput
) -> tuple[dict, dict[str, str]]:
    """The (config, inputs) pair that names the base stage's cache folder."""
    config = {"preset": preset, "half": half, "seed": seed, "pretrain": to_dict(cfg)}
    # num_threads changes speed, not the result: keep it out of the hash so it never forces a retrain.
    config["pretrain"].pop("num_threads")
    return config, {"corpus": corpus.hash, "tokenizer": tokenizer.hash}


def build_base(
    preset: str,
    half: str,
    seed: int,
    cfg: PretrainConfig,
    corpus: StageOutput,
    tokenizer: StageOutput,
    root: Path | None = None,
) -> StageOutput:
    """The cached base model of `preset` trained on corpus split `half` ("a" or "b") with `seed`."""
    from radio.data.corpus import load_split
    from radio.data.tokenizer import encode_document

    get_preset(preset)  # fail on an unknown name before hashing anything

    def build(out: Path) -> dict[str, float]:
        tok = load_tokenizer(tokenizer.path)
        train = token_stream([encode_document(tok, t) for t in load_split(corpus.path, half)])
        heldout = token_stream([encode_document(tok, t) for t in load_split(corpus.path, "heldout")])
        model = build_model(
            preset,
            vocab_size=len(tok),
            seed=seed,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        log.info(
            "base %s: preset %s, %d parameters, %d training tokens", half, preset, count_parameters(model), len(train)
        )
        stats = pretrain(model, train, cfg, seed=seed, heldout=heldout, desc=f"base {half.upper()}")
        model.save_pretrained(str(out))
        tok.save_pretrained(str(out))
        return {"params": count_parameters(model), "vocab_size": model_vocab_size(model), **stats}

    config, inputs = base_stage_key(preset, half, seed, cfg, corpus, tokenizer)
    return run_stage("base", config, build, inputs=inputs, root=root)


def build_base_in_worker(
    preset: str,
    half: str,
    seed: int,
    cfg: PretrainConfig,
    corpus: StageOutput,
    tokenizer: StageOutput,
    root: Path,
    threads: int,
    log_level: int,
) -> StageOutput:
    """`build_base` in a fresh process limited to `threads` torch threads (for building A and B at once)."""
    import torch

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(threads)
    return build_base(preset, half, seed, cfg, corpus, tokenizer, root)
