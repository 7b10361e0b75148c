"""Shared setup of the sweep tests: import paths for the driver AND for Ray workers, a local Ray session.

`sweeps` is not (yet) an installed package, so the repository root goes on `sys.path`; Ray trial actors,
Ray Train workers and evaluation actors unpickle functions of `sweeps.engine` and of these test modules,
so the root and this folder also go on `PYTHONPATH`, which the local Ray instance passes to its workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _path in (str(REPO), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ["PYTHONPATH"] = os.pathsep.join(
    dict.fromkeys([str(REPO), str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
)


@pytest.fixture(scope="module")
def ray_session(ray_token_auth):
    """A local 2-CPU Ray instance with token auth on (a throwaway token in the environment, not ~/.ray)."""
    import ray

    from sweeps.engine import RunOptions, init_ray

    started = init_ray(RunOptions(num_cpus=2))
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def start_sweep_process(command: list[str], temp_dir: Path) -> subprocess.Popen:
    """Start a sweep script in its own session, its Ray instance under `temp_dir` (so it can be killed alone)."""
    env = {**os.environ, "RAY_TMPDIR": str(temp_dir), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def kill_sweep_process(proc: subprocess.Popen, temp_dir: Path) -> None:
    """SIGKILL the sweep's driver (as a cluster's timeout or requeue would) and every Ray process started with its
    RAY_TMPDIR (workers included, whatever their command line says), never anybody else's."""
    import psutil

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    mine = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.environ().get("RAY_TMPDIR") == str(temp_dir):
                mine.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    for process in mine:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(mine, timeout=30)


def wait_for(condition, timeout_s: float, proc: subprocess.Popen | None = None) -> bool:
    """Poll `condition()` until true, the timeout, or the process ending; True when it held."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            return bool(condition())
        time.sleep(0.2)
    return False
