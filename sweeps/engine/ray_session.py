"""Starting or joining Ray, and checking a cluster's nodes before a sweep starts.

- A new local instance: `ray.init(address="local")`, never joining a `ray start` cluster by accident. Ray 2.60
  turns token authentication on for it unless `RAY_AUTH_MODE` is set and writes `~/.ray/auth_token` with the
  process umask: the engine creates that file itself first, mode 0600, when no token is configured. Its workers
  run at the driver's priority (`RAY_worker_niceness=0` unless set), not Ray's default niceness 15.
- Joining a cluster (`--ray-address auto` or HOST:PORT, token in `RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH` or
  `~/.ray/auth_token`): the driver ships this project to the workers as the job's `working_dir`, so workers run
  the driver's code, not whatever their own environment has installed.
- `check_nodes`: on every alive node, a zero-CPU task checks that the storage folder is the driver's (shared) and
  runs the sweep's preflight; a node that fails stops the sweep at start with the node named.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sweeps.engine.errors import ConfigError
from sweeps.engine.sweep import RunOptions

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the project that holds this engine (sweeps/engine/..)
# Never shipped to workers: environments, VCS data, local tracking stores and caches.
SHIP_EXCLUDES = [
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    "mlflow.db",
    "mlartifacts",
    "mlruns",
    ".radio",
    "sweeps-storage",
    "*.db",
    "*.key",
]


def ensure_local_token() -> None:
    """Create `~/.ray/auth_token` (0600) for a new local cluster when token auth is on and no token is set."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    path = Path.home() / ".ray" / "auth_token"
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))


def ship_excludes(secret_files: Sequence[str] = (), folders: Sequence[str] = ()) -> list[str]:
    """What the shipped project leaves out: the defaults, and any secret file or storage folder inside it."""
    extra = []
    for path in [*secret_files, *folders]:
        resolved = Path(path).expanduser().resolve()
        if resolved.is_relative_to(PROJECT_ROOT):
            extra.append("/" + str(resolved.relative_to(PROJECT_ROOT)))  # gitignore syntax: anchored at the root
    return [*SHIP_EXCLUDES, *extra]


def init_ray(options: RunOptions, secret_files: Sequence[str] = ()) -> bool:
    """Start or join Ray; True when this call did it (and the caller should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = options.ray_address or os.environ.get("RAY_ADDRESS") or None
    if address:
        runtime_env: dict[str, Any] = {}
        if options.ship_code:
            folders = [str(p) for p in (options.storage_path, options.cache_root) if p]
            runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": ship_excludes(secret_files, folders)}
        ray.init(address=address, log_to_driver=True, runtime_env=runtime_env or None)
        log.info("connected to the Ray cluster at %s (code shipped: %s)", address, options.ship_code)
        return True
    ensure_local_token()
    # Trial actors and Ray Train workers import the sweep modules: put the project on their path.
    paths = [str(PROJECT_ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    # Ray starts its workers at niceness 15, below the driver and below any other job. A sweep's work is in its
    # workers: on a shared machine a niced training worker got a fraction of the cores (the replication default
    # took 40 minutes instead of ten). They keep the driver's priority unless the caller sets the variable.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(
        address="local",
        num_cpus=options.num_cpus,
        num_gpus=options.num_gpus,
        include_dashboard=False,
        log_to_driver=True,
        configure_logging=True,
        logging_level=logging.WARNING,
    )
    log.info("started a local Ray instance (%s CPUs)", options.num_cpus or "all")
    return True


def _probe(markers: list[str], token: str, preflight: Callable[[], None] | None) -> dict[str, Any]:
    """Runs on one node: can it see the driver's markers (storage, cache), and does the sweep's preflight pass?"""
    unseen = [m for m in markers if not (Path(m).is_file() and Path(m).read_text() == token)]
    error = None
    if preflight is not None:
        try:
            preflight()
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
    return {"host": socket.gethostname(), "unseen": unseen, "error": error}


def check_nodes(folders: Sequence[Path], preflight: Callable[[], None] | None, timeout_s: float = 300.0) -> int:
    """Check every alive node of the cluster (see module doc); returns the number of nodes checked."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    token = uuid.uuid4().hex
    markers = []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / f".node-check-{token[:12]}"
        marker.write_text(token)
        markers.append(marker)
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
        refs = {
            probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(
                [str(m) for m in markers], token, preflight
            ): node
            for node in nodes
        }
        results = ray.get(list(refs), timeout=timeout_s)
    finally:
        for marker in markers:
            marker.unlink(missing_ok=True)
    problems = []
    for node, result in zip(refs.values(), results, strict=True):
        where = f"node {node.get('NodeManagerAddress')} ({result['host']})"
        for marker in result["unseen"]:
            problems.append(
                f"{where} cannot see {Path(marker).parent}: give --storage-path and --cache-root on a file system "
                "shared by every node"
            )
        if result["error"]:
            problems.append(f"{where}: {result['error']}")
    if problems:
        raise ConfigError("cluster check failed:\n  " + "\n  ".join(problems))
    return len(nodes)
