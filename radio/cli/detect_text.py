"""`radio detect-text`: one pooled watermark test over a JSONL file of token ids or texts; prints JSON."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from radio.cli import CliError
from radio.detect.tape import DEDUP_MODES
from radio.detect.text import PROMPT_EXCLUSION_MODES, detect_tokens
from radio.keys import KEY_ENV_VAR, load_key
from radio.watermark import HASHERS, SCHEMES, Watermark


@dataclass(frozen=True)
class TextRecords:
    """Token ids of the answers (and their prompts, when the file has a prompt field) read from a JSONL file."""

    sequences: list[list[int]]
    prompts: list[list[int]] | None


def read_jsonl_records(
    path: Path, field: str, prompt_field: str | None, tokenizer_path: Path | None, vocab_size: int
) -> TextRecords:
    """Read `field` (token ids, or text with a tokenizer) and optionally `prompt_field` from every JSONL line."""
    if not path.is_file():
        raise CliError(f"{path}: input file not found")
    tokenizer = None
    if tokenizer_path is not None:
        from transformers import AutoTokenizer

        if not tokenizer_path.exists():
            raise CliError(f"--tokenizer {tokenizer_path}: not found")
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path), local_files_only=True)

    def to_ids(value: object, where: str) -> list[int]:
        if isinstance(value, str):
            if tokenizer is None:
                raise CliError(f"{where}: is text; pass --tokenizer PATH to tokenize it")
            return list(tokenizer(value, add_special_tokens=False)["input_ids"])
        if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
            raise CliError(f"{where}: expected a list of integer token ids or a string")
        bad = [t for t in value if t < 0 or t >= vocab_size]
        if bad:
            raise CliError(f"{where}: token id {bad[0]} outside [0, vocab_size={vocab_size})")
        return value

    sequences: list[list[int]] = []
    prompts: list[list[int]] = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise CliError(f"{path}:{number}: malformed JSON ({err.msg})") from err
            if not isinstance(record, dict) or field not in record:
                raise CliError(f"{path}:{number}: missing field {field!r}")
            sequences.append(to_ids(record[field], f"{path}:{number}: field {field!r}"))
            if prompt_field is not None:
                if prompt_field not in record:
                    raise CliError(f"{path}:{number}: missing prompt field {prompt_field!r}")
                prompts.append(to_ids(record[prompt_field], f"{path}:{number}: field {prompt_field!r}"))
    if not sequences:
        raise CliError(f"{path}: empty input (no records)")
    return TextRecords(sequences, prompts if prompt_field is not None else None)


def run(args: argparse.Namespace) -> int:
    """Handler of `radio detect-text`."""
    try:
        key = load_key(args.key_file)
    except ValueError as err:
        raise CliError(str(err)) from err
    wm = Watermark(
        scheme=args.scheme,
        k=args.k,
        gamma=args.gamma,
        delta=args.delta,
        key=key,
        vocab_size=args.vocab_size,
        hashing=args.hashing,
    )
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
