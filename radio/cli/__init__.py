"""`radio` command line: thin typed subcommands over the library; each area registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Each module defines `register(subparsers)`; its handlers return the process exit code.
_COMMAND_MODULES = (
    "radio.cli.detect_text",
    "radio.cli.pipeline",
    "radio.cli.train",
    "radio.cli.detect",
    "radio.cli.replication",
)


class CliError(Exception):
    """A user error: printed as one line on stderr with exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(prog="radio", description=__doc__, allow_abbrev=False)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:  # a missing or renamed module fails here, loudly
        importlib.import_module(name).register(sub)
    # No prefix matching: `--key` must never be taken as an abbreviation of `--key-file`.
    for subparser in sub.choices.values():
        subparser.allow_abbrev = False
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `radio` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args) or 0)
    except (CliError, ValueError, FileNotFoundError) as err:
        print(f"radio {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
