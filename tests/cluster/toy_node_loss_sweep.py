"""A toy sweep for the cluster fault tests: trials that checkpoint every step and say where they ran.

Each trial sleeps `--step-seconds` per step, checkpoints every step (`ctx.report(..., checkpoint_dir=...)`) and,
after each report, appends a line `NODE_ID PID START STEP` to `<workdir>/progress-<trial id>.txt`: the Ray node
that runs it, its process id, the step it started (or resumed) from, and the step just checkpointed. With
`--key-file`, the key is read from that file on the node that runs the trial (never passed in the trial's
config), registered as a `Sweep.secrets` entry, and used to MAC each step (only the MAC's first bytes are
reported). Everything else is the engine's standard command line (`--ray-address`, `--storage-path`,
`--max-failures`, ...); `--barrier N` makes the trials wait for each other (see `make_train`). Example:

    python tests/cluster/toy_node_loss_sweep.py --workdir W --steps 12 --ray-address 127.0.0.1:6379 \\
        --storage-path W/storage --cache-root W/cache --tracking-uri sqlite:///W/mlflow.db
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sweeps.engine import Grid, Resources, Sweep, TrialContext, main


def make_train(
    workdir: str, steps: int, step_seconds: float, key_file: str | None, barrier: int = 0
) -> Callable[[TrialContext], dict]:
    """The trial function: resumes from its checkpoint, checkpoints every step, logs node and step.

    With `barrier` > 0, a trial first waits (up to 300 s) until that many trials have started: with one CPU
    per node, trials that wait for each other hold distinct nodes at the same time.
    """

    def train(ctx: TrialContext) -> dict[str, Any]:
        import ray

        node = ray.get_runtime_context().get_node_id()
        key = Path(key_file).read_bytes() if key_file else b""
        start = 0
        with ctx.checkpoint_dir() as folder:
            if folder is not None:
                start = json.loads((folder / "step.json").read_text())["step"] + 1
        Path(workdir, f"started-{ctx.trial_id}").touch()
        deadline = time.monotonic() + 300
        while len(list(Path(workdir).glob("started-*"))) < barrier and time.monotonic() < deadline:
            time.sleep(0.2)
        progress = Path(workdir) / f"progress-{ctx.trial_id}.txt"
        mac = ""
        for step in range(start, steps):
            time.sleep(step_seconds)
            mac = hmac.new(key, f"{ctx.trial_id}:{step}".encode(), hashlib.sha256).hexdigest()[:8]
            with tempfile.TemporaryDirectory() as folder:
                Path(folder, "step.json").write_text(json.dumps({"step": step, "mac": mac}))
                ctx.report({"step": step}, checkpoint_dir=folder)
            with open(progress, "a") as handle:
                handle.write(f"{node} {os.getpid()} {start} {step}\n")
        return {"resumed_from": start, "steps": steps, "last_mac": mac}

    return train


def build(args: argparse.Namespace) -> Sweep:
    """`--trials` seeds of one point, one CPU each; with `--key-file`, the key is a registered secret."""
    key_file = str(Path(args.key_file).resolve()) if args.key_file else None
    secrets = [Path(key_file).read_bytes()] if key_file else []
    return Sweep(
        name=args.name,
        grid=Grid(base={"a": 1}, seeds=tuple(range(args.trials))),
        train=make_train(str(Path(args.workdir).resolve()), args.steps, args.step_seconds, key_file, args.barrier),
        resources=Resources(cpu=1),
        secrets=secrets,
        secret_files=[key_file] if key_file else [],
    )


def parser() -> argparse.ArgumentParser:
    """The toy's own options (the engine adds its standard ones)."""
    out = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out.add_argument("--workdir", required=True, help="where progress-<trial id>.txt files are written")
    out.add_argument("--name", default="node-loss", help="sweep (and MLflow experiment) name")
    out.add_argument("--trials", type=int, default=1, help="number of trials (seeds)")
    out.add_argument("--steps", type=int, default=12, help="checkpointed steps per trial")
    out.add_argument("--step-seconds", type=float, default=1.0, help="time per step")
    out.add_argument("--barrier", type=int, default=0, help="trials wait until this many have started")
    out.add_argument("--key-file", default=None, help="a secret key file, read by the trial on its node")
    return out


if __name__ == "__main__":
    sys.exit(main(build, parser=parser()))
