"""The audits, one package each: `radioactivity` (was this language model trained on our watermarked text?) and
`replication` (does this text-to-image model reproduce its training images?).

An audit package holds `config.py` (its preset's dataclasses), `steps.py` (stage builds, trial and evaluation
functions), `report.py` (tables, plots, findings), `sweep.py` (`build_sweep(args)` and `parser()`: the
declaration the engine runs) and `presets/` (YAML, loaded by `sweeps.engine.presets`). A third audit is one new
folder here and one entry script in `sweeps/` that calls `launch`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from sweeps.engine import RunOptions, Sweep, main


def default_options() -> RunOptions:
    """Where every audit's sweeps go by default: `.radio/sweeps` under the working directory, radio's cache root."""
    from radio.cache import default_cache_root

    return RunOptions(storage_path=str(Path(".radio") / "sweeps"), cache_root=str(default_cache_root()))


def launch(build_sweep: Callable[[argparse.Namespace], Sweep], parser: argparse.ArgumentParser) -> int:
    """Run an audit's sweep from the command line with the common defaults; returns the exit status."""
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # workers inherit it: no bars in the log
    return main(build_sweep, parser=parser, defaults=default_options())
