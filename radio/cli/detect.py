"""`radio detect`: one radioactivity test (open or closed model, or the MIA baseline) of a checkpoint; prints JSON.

The key is read from --key-file or $RADIO_WATERMARK_KEY (never from the command line); results carry only its
fingerprint. The watermark's vocabulary is the model's logits width unless --vocab-size says otherwise (then both
must agree). Window size and scheme default to those recorded in the data (`k`, `scheme` columns).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from radio.cli import CliError
from radio.detect.tape import DEDUP_MODES
from radio.detect.text import PROMPT_EXCLUSION_MODES
from radio.keys import KEY_ENV_VAR


def _phi_arg(value: str) -> int | str:
    if value == "all":
        return value
    try:
        n = int(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected 'all' or a top-N count, got {value!r}") from err
    if n < 1:
        raise argparse.ArgumentTypeError(f"top-N must be >= 1, got {n}")
    return n


def _data_watermark(data: Path, split: str) -> tuple[set[str], set[int]]:
    """Schemes and window sizes recorded in one split of the data (empty sets when the columns are absent)."""
    from radio.detect.actor import load_dataset_folder

    folder = data / split
    if not folder.is_dir():
        raise CliError(f"--data {data}: no {split!r} split (expected a mix folder with known/ and heldout/)")
    dataset = load_dataset_folder(folder)
    schemes = set(dataset["scheme"]) - {"none"} if "scheme" in dataset.column_names else set()
    ks = set(dataset["k"]) if "k" in dataset.column_names and schemes else set()
    return schemes, ks


def run(args: argparse.Namespace) -> int:
    """Handler of `radio detect`."""
    from radio.detect.actor import DetectionActor, DetectionSpec
    from radio.keys import load_key
    from radio.models.loading import ModelPathError, VocabMismatchError, load_model, load_tokenizer, model_vocab_size
    from radio.watermark import WatermarkSpec

    if args.setting != "mia" and args.supervised is None:
        raise CliError("choose --supervised or --unsupervised")
    supervised = bool(args.supervised) if args.supervised is not None else True
    if args.answers is not None and args.setting != "closed":
        raise CliError("--answers: only with --setting closed")
    data = args.data.expanduser() if args.data is not None else None
    if data is None and not (args.setting == "closed" and args.answers is not None):
        raise CliError("--data: a mix folder is required (except for --setting closed with --answers)")
    if data is not None and not data.is_dir():
        raise CliError(f"--data {data}: folder not found")
    try:
        key = load_key(args.key_file)
    except ValueError as err:
        raise CliError(str(err)) from err
    if not args.model.expanduser().is_dir():
        raise CliError(f"--model {args.model}: folder not found")
    try:
        tokenizer = load_tokenizer(args.model)
        model = load_model(args.model, device=_device(args.device))
    except ModelPathError as err:
        raise CliError(str(err)) from err
    width = model_vocab_size(model)
    vocab_size = args.vocab_size if args.vocab_size is not None else width
    if vocab_size != width:
        raise CliError(f"vocab mismatch: --vocab-size {vocab_size} but model {args.model} has {width} logits")

    scheme, k = args.scheme, args.k
    if data is not None:
        split = args.split or ("known" if supervised else "heldout")
        data_schemes, data_ks = _data_watermark(data, split)
        if scheme is None and len(data_schemes) == 1:
            scheme = next(iter(data_schemes))
        if k is None and len(data_ks) == 1:
            k = next(iter(data_ks))
        if data_ks and k not in data_ks:
            raise CliError(f"--k {k}: the data {data / split} was watermarked with k={sorted(data_ks)}")
    spec = WatermarkSpec(
        scheme=scheme or "kgw",
        k=2 if k is None else k,
        gamma=args.gamma,
        delta=args.delta,
        vocab_size=vocab_size,
        hashing=args.hashing,
    )
    try:
        actor = DetectionActor(
            args.model,
            spec,
            key=key,
            data=data,
            role="base-model" if args.base_model else "model",
            device=args.device,
            batch_size=args.batch_size,
            seq_len=args.seq_len,
            model=model,
            tokenizer=tokenizer,
        )
    except VocabMismatchError as err:
        raise CliError(str(err)) from err
    test = DetectionSpec(
        setting=args.setting,
        supervised=supervised,
        split=args.split,
        phi=args.phi,
        phi_split=args.phi_split,
        dedup=args.dedup,
        key="wrong" if args.wrong_key is not None else "correct",
        wrong_key_index=args.wrong_key or 0,
        in_sequence_exclusion=not args.no_in_sequence_exclusion,
        prompt_exclusion=args.prompt_exclusion,
        max_texts=args.max_texts,
        answers=None if args.answers is None else str(args.answers),
        answer_field=args.answer_field,
        prompt_field=args.prompt_field,
        greedy=args.greedy,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        mid_p=args.mid_p,
        out_dir=None if args.out is None else str(args.out),
    )
    row = actor.run(test)
    print(json.dumps(row, sort_keys=True, default=str))
    return 0


def _device(device: str) -> str:
    from radio.detect.actor import resolve_device

    return resolve_device(device)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `detect` subcommand."""
    parser = subparsers.add_parser(
        "detect",
        help="radioactivity test of a model: open (reading mode), closed (answers) or the MIA baseline",
        description=f"The key is read from --key-file or ${KEY_ENV_VAR}; it is never accepted on the command line.",
    )
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder of B (model + tokenizer)")
    parser.add_argument("--setting", choices=("open", "closed", "mia"), required=True)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--supervised", dest="supervised", action="store_const", const=True, default=None)
    group.add_argument("--unsupervised", dest="supervised", action="store_const", const=False)
    parser.add_argument("--data", type=Path, help="mix folder with known/ and heldout/ (Alice's watermarked text)")
    parser.add_argument("--split", help="split holding the test text (default: known if supervised, else heldout)")
    parser.add_argument("--key-file", type=Path, help=f"file holding the secret key (else ${KEY_ENV_VAR})")
    parser.add_argument("--wrong-key", type=int, metavar="I", help="control: use the I-th key derived from the key")
    parser.add_argument("--base-model", action="store_true", help="mark the result as the base-model control")
    parser.add_argument("--phi", type=_phi_arg, help="filter: 'all' k-grams of Alice's text, or the top-N frequent")
    parser.add_argument("--phi-split", help="split phi is built from (default: the test text's split)")
    parser.add_argument("--dedup", default="window+token", choices=DEDUP_MODES)
    parser.add_argument("--prompt-exclusion", default="own", choices=PROMPT_EXCLUSION_MODES, help="closed setting")
    parser.add_argument(
        "--no-in-sequence-exclusion", action="store_true", help="open setting: also score windows seen earlier"
    )
    parser.add_argument("--answers", type=Path, help="closed setting: JSONL of answers produced elsewhere")
    parser.add_argument("--answer-field", default="answer_ids", help="JSONL field: token ids, or text (tokenized)")
    parser.add_argument("--prompt-field", default=None, help="JSONL field with the prompt (enables prompt exclusion)")
    parser.add_argument("--scheme", default=None, help="watermark scheme (default: from the data, else kgw)")
    parser.add_argument("--k", type=int, default=None, help="window size (default: from the data, else 2)")
    parser.add_argument("--gamma", type=float, default=0.25)
    parser.add_argument("--delta", type=float, default=3.0)
    parser.add_argument("--hashing", default="radio")
    parser.add_argument("--vocab-size", type=int, help="watermark domain (default and requirement: logits width)")
    parser.add_argument("--max-texts", type=int, help="read at most this many records per split")
    parser.add_argument("--seq-len", type=int, default=256, help="open setting: tokens per forward row")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--greedy", action="store_true", help="closed setting: greedy answers instead of sampling")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--mid-p", action="store_true", help="report the mid-p value (calibration plots)")
    parser.add_argument("--out", type=Path, help="folder for result.json and phi")
    parser.set_defaults(handler=run)
