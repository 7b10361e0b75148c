"""`radio detect`: one radioactivity test (any registered setting: open, closed, mia, ...) of a checkpoint.

The key is read from --key-file or $RADIO_WATERMARK_KEY (never from the command line); results carry only its
fingerprint. The watermark's vocabulary is the model's logits width unless --vocab-size says otherwise (then both
must agree). Window size and scheme default to those recorded in the data (`k`, `scheme` columns). Each setting's
own options (`radio.detect.settings`) become flags here without any edit to this file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from radio.cli import CliError
from radio.detect.settings import all_settings
from radio.detect.tape import DEDUP_MODES
from radio.keys import KEY_ENV_VAR


@dataclasses.dataclass(frozen=True)
class _CliDefault:
    """An option's value when its flag is not given, for the chosen setting only (see `cli_default` metadata)."""

    value: Any


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
    from radio.detect.records import load_dataset_folder

    folder = data / split
    if not folder.is_dir():
        raise CliError(f"--data {data}: no {split!r} split (expected a mix folder with known/ and heldout/)")
    dataset = load_dataset_folder(folder)
    schemes = set(dataset["scheme"]) - {"none"} if "scheme" in dataset.column_names else set()
    ks = set(dataset["k"]) if "k" in dataset.column_names and schemes else set()
    return schemes, ks


def _option_flag(name: str, default: Any) -> str:
    return f"--no-{name.replace('_', '-')}" if default is True else f"--{name.replace('_', '-')}"


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    """One flag per field of every setting's options dataclass; a flag shared by two settings is added once."""
    group = parser.add_argument_group("setting options", "each applies to the setting(s) named in its help")
    owners: dict[str, list[str]] = {}
    actions: dict[str, argparse.Action] = {}
    for name, setting in sorted(all_settings().items()):
        hints = typing.get_type_hints(setting.options)
        for field in dataclasses.fields(setting.options):
            owners.setdefault(field.name, []).append(name)
            if field.name in actions:
                continue
            default = field.default
            help_text = field.metadata.get("help", "")
            unset = _CliDefault(field.metadata["cli_default"]) if "cli_default" in field.metadata else None
            flag = _option_flag(field.name, default)
            kind = hints[field.name]
            if kind is bool:  # a switch away from the default
                action = "store_false" if default is True else "store_true"
                actions[field.name] = group.add_argument(
                    flag, dest=field.name, action=action, default=unset or argparse.SUPPRESS, help=help_text
                )
                continue
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            base = args[0] if typing.get_origin(kind) in (typing.Union, types.UnionType) and args else kind
            convert = {int: int, float: float}.get(base, str)
            actions[field.name] = group.add_argument(
                flag, dest=field.name, type=convert, default=unset or argparse.SUPPRESS, help=help_text
            )
    for name, action in actions.items():
        action.help = f"{action.help} [{', '.join(owners[name])}]".strip()
    parser.set_defaults(_option_owners=owners)


def _options(args: argparse.Namespace, setting: str) -> dict[str, Any]:
    """The setting's options given on the command line; a flag of another setting is an error naming it."""
    out = {}
    for name, owners in args._option_owners.items():
        if not hasattr(args, name):
            continue
        value = getattr(args, name)
        if setting not in owners:
            if isinstance(value, _CliDefault):
                continue
            flag = _option_flag(name, not value) if isinstance(value, bool) else _option_flag(name, None)
            raise CliError(f"{flag}: only with --setting {' or '.join(owners)}")
        out[name] = value.value if isinstance(value, _CliDefault) else value
    return out


def _spec(args: argparse.Namespace) -> Any:
    """The DetectionSpec of the command line (CliError naming the flag when it is invalid)."""
    from radio.config import ConfigError
    from radio.detect.spec import DetectionSpec

    setting = all_settings()[args.setting]
    if setting.supervised and args.supervised is None:
        raise CliError("choose --supervised or --unsupervised")
    supervised = bool(args.supervised) if args.supervised is not None else True
    try:
        return DetectionSpec.from_dict(
            {
                "setting": args.setting,
                "supervised": supervised,
                "split": args.split,
                "phi": args.phi,
                "phi_split": args.phi_split,
                "dedup": args.dedup,
                "key": "wrong" if args.wrong_key is not None else "correct",
                "wrong_key_index": args.wrong_key or 0,
                "max_texts": args.max_texts,
                "seed": args.seed,
                "mid_p": args.mid_p,
                "out_dir": None if args.out is None else str(args.out),
                **_options(args, args.setting),
            }
        )
    except ConfigError as err:
        raise CliError(str(err)) from err


def _load_checkpoint(args: argparse.Namespace) -> tuple[Any, Any]:
    """(tokenizer, model) of --model on --device, its logits width checked against --vocab-size."""
    from radio.device import resolve_device
    from radio.models.loading import ModelPathError, load_model, load_tokenizer, model_vocab_size

    if not args.model.expanduser().is_dir():
        raise CliError(f"--model {args.model}: folder not found")
    try:
        tokenizer = load_tokenizer(args.model)
        model = load_model(args.model, device=resolve_device(args.device))
    except ModelPathError as err:
        raise CliError(str(err)) from err
    width = model_vocab_size(model)
    vocab_size = args.vocab_size if args.vocab_size is not None else width
    if vocab_size != width:
        raise CliError(f"vocab mismatch: --vocab-size {vocab_size} but model {args.model} has {width} logits")
    return tokenizer, model


def _watermark_config(args: argparse.Namespace, data: Path | None, split: str) -> Any:
    """The watermark config: --scheme and --k, or what the data folder says it was watermarked with."""
    from radio.watermark import WatermarkConfig

    scheme, k = args.scheme, args.k
    if data is not None:
        data_schemes, data_ks = _data_watermark(data, split)
        if scheme is None and len(data_schemes) == 1:
            scheme = next(iter(data_schemes))
        if k is None and len(data_ks) == 1:
            k = next(iter(data_ks))
        if data_ks and k not in data_ks:
            raise CliError(f"--k {k}: the data {data / split} was watermarked with k={sorted(data_ks)}")
    return WatermarkConfig(
        scheme=scheme or "kgw", k=2 if k is None else k, gamma=args.gamma, delta=args.delta, hashing=args.hashing
    )


def run(args: argparse.Namespace) -> int:
    """Handler of `radio detect`."""
    from radio.detect.actor import DetectionActor
    from radio.keys import load_key
    from radio.models.loading import VocabMismatchError

    test = _spec(args)
    data = args.data.expanduser() if args.data is not None else None
    if data is None and all_settings()[args.setting].needs_data(test):
        raise CliError(f"--data: a mix folder is required for --setting {args.setting} with these options")
    if data is not None and not data.is_dir():
        raise CliError(f"--data {data}: folder not found")
    try:
        key = load_key(args.key_file)
    except ValueError as err:
        raise CliError(str(err)) from err
    tokenizer, model = _load_checkpoint(args)
    config = _watermark_config(args, data, test.text_split)
    try:
        actor = DetectionActor(
            args.model,
            config,
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
    row = actor.run(test)
    print(json.dumps(row, sort_keys=True, default=str))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `detect` subcommand."""
    known = all_settings()
    parser = subparsers.add_parser(
        "detect",
        help="radioactivity test of a model: " + "; ".join(f"{n}: {s.doc}" for n, s in sorted(known.items())),
        description=f"The key is read from --key-file or ${KEY_ENV_VAR}; it is never accepted on the command line.",
    )
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder of B (model + tokenizer)")
    parser.add_argument("--setting", choices=sorted(known), required=True)
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
    parser.add_argument("--scheme", default=None, help="watermark scheme (default: from the data, else kgw)")
    parser.add_argument("--k", type=int, default=None, help="window size (default: from the data, else 2)")
    parser.add_argument("--gamma", type=float, default=0.25)
    parser.add_argument("--delta", type=float, default=3.0)
    parser.add_argument("--hashing", default="radio")
    parser.add_argument("--vocab-size", type=int, help="watermark domain (default and requirement: logits width)")
    parser.add_argument("--max-texts", type=int, help="read at most this many records per split")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per forward row (reading mode)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--mid-p", action="store_true", help="report the mid-p value (calibration plots)")
    parser.add_argument("--out", type=Path, help="folder for result.json and phi")
    _add_setting_options(parser)
    parser.set_defaults(handler=run)
