"""The replication audit's entry script: the sweep is declared in `sweeps/audits/replication/sweep.py`
(`python sweeps/replication.py --help` lists the presets and options)."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweeps.audits import launch
from sweeps.audits.replication.sweep import build_sweep, parser

if __name__ == "__main__":
    sys.exit(launch(build_sweep, parser()))
