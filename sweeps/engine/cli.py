"""The command line every sweep script shares: axis overrides, --dry-run, storage, tracking, Ray, verbosity."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

from sweeps.engine.errors import ConfigError, SweepFailedError
from sweeps.engine.runner import run
from sweeps.engine.sweep import RunOptions, Sweep


def add_arguments(parser: argparse.ArgumentParser, defaults: RunOptions | None = None) -> argparse.ArgumentParser:
    """The engine's standard options (a sweep script adds its own, e.g. --preset, --key-file)."""
    defaults = defaults or RunOptions()
    parser.add_argument("overrides", nargs="*", metavar="AXIS=V1,V2", help="override grid axes, e.g. rho=0,0.5,1")
    parser.add_argument("--cartesian", action="store_true", help="full Cartesian product instead of one-at-a-time")
    parser.add_argument("--dry-run", action="store_true", help="print trials, stages and resources; start nothing")
    parser.add_argument("--tracking-uri", default=None, help="MLflow URI (default $MLFLOW_TRACKING_URI or ./mlflow.db)")
    parser.add_argument("--experiment", default=None, help="MLflow experiment name (default: the sweep name)")
    parser.add_argument(
        "--storage-path",
        default=defaults.storage_path,
        help=f"Tune storage, checkpoints and the sweep log; shared by every node on a cluster "
        f"(default {defaults.storage_path or './sweeps-storage'})",
    )
    parser.add_argument(
        "--cache-root",
        default=defaults.cache_root,
        help="stage cache root; shared by every node on a cluster "
        f"(default {defaults.cache_root or '<storage>/cache'})",
    )
    parser.add_argument("--ray-address", default=None, help="'auto' or HOST:PORT to join a cluster; default local Ray")
    parser.add_argument("--no-ship-code", action="store_true", help="on a cluster, workers use their own install")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a new local Ray instance")
    parser.add_argument("--num-gpus", type=int, default=None, help="GPUs of a new local Ray instance")
    parser.add_argument(
        "--max-concurrent-trials",
        type=int,
        default=defaults.max_concurrent_trials,
        help="trials trained at once (default: as many as the cluster's CPUs and GPUs fit, after the evaluation "
        "actors; 0: no limit)",
    )
    parser.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial (from its checkpoint)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Ray and worker output live")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the final tables")
    return parser


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """RunOptions from the parsed command line (errors name the option)."""
    for name in ("max_concurrent_trials", "max_failures"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 0")
    return RunOptions(
        storage_path=args.storage_path,
        cache_root=args.cache_root,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        ray_address=args.ray_address,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        max_concurrent_trials=args.max_concurrent_trials,
        max_failures=args.max_failures,
        verbose=2 if args.verbose else 0 if args.quiet else 1,
        ship_code=not args.no_ship_code,
        dry_run=args.dry_run,
    )


def apply_args(sweep: Sweep, args: argparse.Namespace) -> Sweep:
    """The sweep with the command-line grid overrides and --cartesian applied (errors name the axis)."""
    grid = sweep.grid.with_overrides(args.overrides)
    if args.cartesian:
        grid = replace(grid, mode="cartesian")
    return replace(sweep, grid=grid)


def main(
    build: Callable[[argparse.Namespace], Sweep],
    argv: Sequence[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
    defaults: RunOptions | None = None,
) -> int:
    """Parse the command line, build the sweep with `build(args)`, apply overrides, run or dry-run it.

    Exit status: 0 when every trial is complete, 1 when some failed or are missing, 2 for bad input (the
    message, naming the field, axis or file, goes to stderr as `error: ...`; nothing starts).
    """
    parser = add_arguments(parser or argparse.ArgumentParser(), defaults)
    args = parser.parse_args(argv)
    try:
        sweep = apply_args(build(args), args)
        options = options_from_args(args)
        sweep.trials()  # validate the grid before anything starts
    except (ValueError, OSError) as err:  # ConfigError is a ValueError; a missing file is an OSError
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = run(sweep, options)
    except ConfigError as err:  # e.g. a cluster check: the message names the node and the path
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SweepFailedError as err:
        print(f"error: the sweep stopped: {err}\nthe full traceback is in {err.log_path}", file=sys.stderr)
        print("rerun the same command to resume: finished stages and trials are kept", file=sys.stderr)
        return 1
    failed = [o for o in result.outcomes if o.error]
    return 1 if failed or (not options.dry_run and len(result.outcomes) < len(sweep.trials())) else 0
