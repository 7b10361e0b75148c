"""Test-wide settings: CPU only, few threads, quiet logs."""

import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Helper modules that tests import by name (e.g. the independent reference implementations) live beside them.
for folder in Path(__file__).parent.iterdir():
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
