"""Test-wide settings: CPU only, few threads, quiet logs."""

import os
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Helper modules that tests import by name (e.g. the independent reference implementations) live beside them.
for folder in Path(__file__).parent.iterdir():
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture(scope="session")
def ray_token_auth():
    """Token auth for the tests' local Ray instances: one throwaway token in the environment, never ~/.ray.

    One token for the whole session: Ray caches the auth mode and the token it first read, so a second token
    in the same process would disagree with the GCS it starts. The cached config is refreshed once here.
    """
    import secrets

    from ray._raylet import Config

    with pytest.MonkeyPatch.context() as patch:  # restores the environment afterwards
        patch.setenv("RAY_AUTH_MODE", "token")
        patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        Config.initialize("")
        yield
