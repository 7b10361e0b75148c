"""`radio finetune`: fine-tune a base model on prompt/answer data; prints the checkpoint folder as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from radio.config import ConfigError, load_yaml


def _config_mapping(path: Path) -> dict[str, Any]:
    """The fine-tune settings of a YAML file: the whole mapping, or its `finetune:` section if it has one."""
    data = load_yaml(path)
    if "finetune" in data:
        section = data["finetune"]
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: finetune: expected a mapping, got {type(section).__name__}")
        return section
    return data


def _finetune(args: argparse.Namespace) -> int:
    from radio.cli import CliError
    from radio.train.config import FinetuneConfig

    try:
        cfg = FinetuneConfig.from_dict(_config_mapping(args.config))
    except ConfigError as err:
        raise CliError(f"{args.config}: {err}") from err
    for flag, path in (("--base", args.base), ("--train", args.train)):
        if not path.exists():
            raise CliError(f"{flag} {path}: not found")
    from radio.train.finetune import finetune
    from radio.train.stage import finetune_stage

    if args.out is not None:
        result = finetune(cfg, args.base, args.train, args.out)
        payload = {
            "checkpoint": str(result.checkpoint_dir),
            "adapter": str(result.adapter_dir) if result.adapter_dir else None,
            "metrics": str(result.metrics_path),
            "final_loss": result.final_loss,
            "tokens_per_s": round(result.tokens_per_s, 1),
        }
    else:
        stage = finetune_stage(cfg, args.base, args.train, root=args.cache_root)
        payload = {
            "checkpoint": str(stage.path),
            "hash": stage.hash,
            "cached": stage.cached,
            "final_loss": stage.manifest.get("counts", {}).get("final_loss"),
        }
    print(json.dumps(payload))
    return 0


def register(subparsers: Any) -> None:
    """Add the `finetune` subcommand."""
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a base model (full or LoRA, optionally DeepSpeed) on a prompt/answer dataset",
        description=(
            "Fine-tune the save_pretrained model in --base on the datasets folder in --train (prompt_ids, "
            "answer_ids; loss on the answers). Without --out the result is the cached stage under the cache "
            "root (an identical fine-tune is reused); with --out it trains into that folder and resumes "
            "there after an interruption. Prints the checkpoint folder as JSON."
        ),
    )
    parser.add_argument(
        "--config", required=True, type=Path, help="YAML: FinetuneConfig fields (or a finetune: section)"
    )
    parser.add_argument("--base", required=True, type=Path, help="base model folder (model and tokenizer)")
    parser.add_argument("--train", required=True, type=Path, help="training dataset folder (save_to_disk)")
    parser.add_argument("--out", type=Path, default=None, help="stable output folder (resumable) instead of the cache")
    parser.add_argument("--cache-root", type=Path, default=None, help="cache root (default: $RADIO_CACHE)")
    parser.set_defaults(handler=_finetune)
