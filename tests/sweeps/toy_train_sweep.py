"""A small sweep with a shared stage and Tune trials, for fault tests: the driver is killed and rerun.

The stage `data` takes a few seconds; each trial takes a few seconds. Every stage build and every trial appends a
line to `<workdir>/calls.txt`, so a test can count what ran twice.

    python tests/sweeps/toy_train_sweep.py WORKDIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sweeps.engine import Grid, Resources, RunOptions, Stage, Sweep, run


def make_sweep(workdir: Path) -> Sweep:
    """Three trials sharing one stage."""
    calls = workdir / "calls.txt"

    def note(text: str) -> None:
        with open(calls, "a") as handle:
            handle.write(text + "\n")

    def build_data(out: Path, config, inputs) -> dict:
        note("stage-start")
        time.sleep(4)
        (out / "offset.json").write_text(json.dumps({"offset": 100}))
        note("stage-done")
        return {"n": 1}

    def train(ctx) -> dict:
        note(f"trial-start {ctx.trial_id}")
        time.sleep(3)
        offset = json.loads((ctx.stages["data"] / "offset.json").read_text())["offset"]
        note(f"trial-done {ctx.trial_id}")
        return {"value": ctx.params["a"] + offset}

    return Sweep(
        name="toy-train",
        grid=Grid(base={"a": 1}, vary={"a": [1, 2, 3]}),
        train=train,
        stages=[Stage("data", build_data, resources=Resources(cpu=1))],
        resources=Resources(cpu=1),
    )


if __name__ == "__main__":
    workdir = Path(sys.argv[1])
    options = RunOptions(
        storage_path=str(workdir / "storage"),
        cache_root=str(workdir / "cache"),
        tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
        num_cpus=2,
    )
    result = run(make_sweep(workdir), options)
    sys.exit(0 if all(o.error is None for o in result.outcomes) and len(result.outcomes) == 3 else 1)
