"""A running stage build's progress lines reach the live view (throttled, newest line only), and the progress file
is gone once the build ends."""

from __future__ import annotations

import time
from pathlib import Path

from sweeps_testlib import ray_session  # noqa: F401  (a fixture: a local 2-CPU Ray with token auth)

from stagestore import progress_file as stage_progress_file
from sweeps.engine import Grid, Resources, Stage, StagePlan
from sweeps.engine.stages import progress_file


def build_slowly(out: Path, config, inputs) -> dict:
    live = stage_progress_file()
    assert live is not None and live.name.startswith(".progress-")
    for step in (1, 2, 3):
        with open(live, "a", encoding="utf-8") as file:
            file.write(f"step {step}/3\n")
        time.sleep(1.0)
    (out / "done.json").write_text("{}")
    return {}


def test_running_builds_report_their_newest_progress_line(tmp_path: Path, ray_session) -> None:  # noqa: F811
    assert stage_progress_file() is None  # outside a build
    stages = [Stage("slow", build_slowly, depends_on=("k",), resources=Resources(cpu=1))]
    trials = Grid(base={"k": 1}, vary={"k": [1, 2]}).trials()
    plan = StagePlan(stages, trials, {}, tmp_path)
    lines: list[str] = []
    plan.run("ray", progress=lines.append, progress_every_s=0.4)
    relayed = [line for line in lines if "step " in line]
    assert lines[0] == "stage slow: building 2 (0 cached)" and lines[-1].startswith("stage slow: 2 built in ")
    # two builds at once: each line names its instance; no line twice in a row for one instance
    digests = {inst.digest[:8] for inst in plan.instances.values()}
    assert relayed and all(line.split(":")[0].split()[-1] in digests for line in relayed)
    assert len(relayed) == len(set(relayed))
    assert all(not progress_file(tmp_path, "slow", inst.digest).exists() for inst in plan.instances.values())
    again: list[str] = []
    plan.run("ray", progress=again.append, progress_every_s=0.4)  # cached now: nothing built, nothing relayed
    assert again == []
