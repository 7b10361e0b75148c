"""Starting or joining Ray, and checking a cluster's nodes before a sweep starts.

- A new local instance: `ray.init(address="local")`, never joining a `ray start` cluster by accident. Ray 2.60
  turns token authentication on for it unless `RAY_AUTH_MODE` is set and writes `~/.ray/auth_token` with the
  process umask: the engine creates that file itself first, mode 0600, when no token is configured.
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
from collections.abc import Callable
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


def init_ray(options: RunOptions) -> bool:
    """Start or join Ray; True when this call did it (and the caller should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = options.ray_address or os.environ.get("RAY_ADDRESS") or None
    if address:
        runtime_env: dict[str, Any] = {}
        if options.ship_code:
            runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": SHIP_EXCLUDES}
        ray.init(address=address, log_to_driver=True, runtime_env=runtime_env or None)
        log.info("connected to the Ray cluster at %s (code shipped: %s)", address, options.ship_code)
        return True
    ensure_local_token()
    # Trial actors and Ray Train workers import the sweep modules: put the project on their path.
    paths = [str(PROJECT_ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
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


def _probe(marker: str, token: str, preflight: Callable[[], None] | None) -> dict[str, Any]:
    """Runs on one node: can it see the driver's storage marker, and does the sweep's preflight pass?"""
    path = Path(marker)
    shared = path.is_file() and path.read_text() == token
    error = None
    if preflight is not None:
        try:
            preflight()
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
    return {"host": socket.gethostname(), "shared": shared, "error": error}


def check_nodes(storage: Path, preflight: Callable[[], None] | None, timeout_s: float = 300.0) -> int:
    """Check every alive node of the cluster (see module doc); returns the number of nodes checked."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    storage.mkdir(parents=True, exist_ok=True)
    marker = storage / f".node-check-{uuid.uuid4().hex[:12]}"
    token = uuid.uuid4().hex
    marker.write_text(token)
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
        refs = {
            probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(
                str(marker), token, preflight
            ): node
            for node in nodes
        }
        results = ray.get(list(refs), timeout=timeout_s)
    finally:
        marker.unlink(missing_ok=True)
    problems = []
    for node, result in zip(refs.values(), results, strict=True):
        where = f"node {node.get('NodeManagerAddress')} ({result['host']})"
        if not result["shared"]:
            problems.append(
                f"{where} cannot see the storage path {storage}: give --storage-path and --cache-root on a file "
                "system shared by every node"
            )
        if result["error"]:
            problems.append(f"{where}: {result['error']}")
    if problems:
        raise ConfigError("cluster check failed:\n  " + "\n  ".join(problems))
    return len(nodes)
