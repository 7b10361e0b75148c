"""Shared setup of the sweep tests: import paths for the driver AND for Ray workers, a local Ray session.

`sweeps` is not (yet) an installed package, so the repository root goes on `sys.path`; Ray trial actors,
Ray Train workers and evaluation actors unpickle functions of `sweeps.engine` and of these test modules,
so the root and this folder also go on `PYTHONPATH`, which the local Ray instance passes to its workers.
"""

from __future__ import annotations

import os
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
