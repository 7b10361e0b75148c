"""`radio detect-text`: one pooled watermark test over a JSONL file of token ids or texts; prints JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from radio.cli import CliError
from radio.detect.records import read_jsonl_records
from radio.detect.tape import DEDUP_MODES
from radio.detect.text import PROMPT_EXCLUSION_MODES, detect_tokens
from radio.keys import KEY_ENV_VAR, load_key
from radio.watermark import HASHERS, SCHEMES, Watermark, WatermarkConfig


def run(args: argparse.Namespace) -> int:
    """Handler of `radio detect-text`."""
    try:
        key = load_key(args.key_file)
    except ValueError as err:
        raise CliError(str(err)) from err
    config = WatermarkConfig(scheme=args.scheme, k=args.k, gamma=args.gamma, delta=args.delta, hashing=args.hashing)
    wm = Watermark(config, key=key, vocab_size=args.vocab_size)
    field = args.field or ("text" if args.tokenizer else "token_ids")
    records = read_jsonl_records(args.input, field, args.prompt_field, args.tokenizer, args.vocab_size)
    result = detect_tokens(
        wm,
        records.sequences,
        prompts=records.prompts,
        dedup=args.dedup,
        prompt_exclusion=args.prompt_exclusion,
        mid_p=args.mid_p,
    )
    print(json.dumps(result.to_dict(), sort_keys=True))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `detect-text` subcommand."""
    parser = subparsers.add_parser(
        "detect-text",
        help="test a JSONL file of token ids or texts for the watermark",
        description=f"The key is read from --key-file or ${KEY_ENV_VAR}; it is never accepted on the command line.",
    )
    parser.add_argument("input", type=Path, help="JSONL file, one record per line")
    parser.add_argument("--field", help="record field with the answer (default token_ids, or text with --tokenizer)")
    parser.add_argument("--prompt-field", help="record field with the prompt (enables prompt-window exclusion)")
    parser.add_argument("--tokenizer", type=Path, help="local tokenizer folder, for text fields")
    parser.add_argument("--key-file", type=Path, help=f"file holding the secret key (else ${KEY_ENV_VAR})")
    parser.add_argument("--scheme", default="kgw", help=f"one of {sorted(SCHEMES)}")
    parser.add_argument("--hashing", default="radio", help=f"one of {sorted(HASHERS)}")
    parser.add_argument("--k", type=int, default=2, help="window size")
    parser.add_argument("--gamma", type=float, default=0.25)
    parser.add_argument("--delta", type=float, default=3.0)
    parser.add_argument("--vocab-size", type=int, required=True, help="size of the watermark's token domain")
    parser.add_argument("--dedup", default="window+token", choices=DEDUP_MODES)
    parser.add_argument("--prompt-exclusion", default="own", choices=PROMPT_EXCLUSION_MODES)
    parser.add_argument("--mid-p", action="store_true", help="report the mid-p value (calibration plots)")
    parser.set_defaults(handler=run)
