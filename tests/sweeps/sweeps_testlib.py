"""Shared setup of the sweep tests: import paths for the driver AND for Ray workers, a local Ray session.

`sweeps` is not (yet) an installed package, so the repository root goes on `sys.path`; Ray trial actors,
Ray Train workers and evaluation actors unpickle functions of `sweeps.engine` and of these test modules,
so the root and this folder also go on `PYTHONPATH`, which the local Ray instance passes to its workers.
"""

from __future__ import annotations

import os
import secrets
import sys
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
def ray_session():
    """A local 2-CPU Ray instance with token auth on (a throwaway token in the environment, not ~/.ray)."""
    import ray

    from sweeps.engine import RunOptions, init_ray

    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    # Ray caches its C++ config (auth mode included) when first imported: refresh it, as ray.init does when it
    # enables token auth itself; otherwise the driver keeps "disabled" while the GCS it starts wants a token.
    from ray._raylet import Config

    Config.initialize("")
    started = init_ray(RunOptions(num_cpus=2))
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
