"""Training progress of the tiny model: rate over the steps run here, ETA, the line, and the file sink."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

from radio.progress import LineFile, Throttle, format_seconds
from radio.replication.t2i.progress import TrainingProgress


def test_rate_and_eta_count_only_the_steps_run_here() -> None:
    now = [100.0]
    meter = TrainingProgress(total=1000, first_step=200, clock=lambda: now[0])  # resumed at step 200
    now[0] = 150.0  # 50 s for steps 201-300
    metrics, line = meter.update(300, 0.12345)
    assert metrics == {"step": 300.0, "loss": 0.12345, "steps_per_s": 2.0, "eta_s": 350.0}
    assert line == "tiny t2i: step 300/1000 loss 0.1235 2.00 steps/s ETA 5m50s"


def test_unknown_rate_before_any_step() -> None:
    meter = TrainingProgress(total=10, first_step=10, clock=lambda: 0.0)
    metrics, line = meter.update(10, 1.0)
    assert math.isnan(metrics["steps_per_s"]) and line.endswith("nan steps/s ETA ?")


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0, 59.4, 95, 3725, float("nan"))] == ["0s", "59s", "1m35s", "1h02m", "?"]


def test_line_file_appends_and_pickles(tmp_path: Path) -> None:
    sink = pickle.loads(pickle.dumps(LineFile(str(tmp_path / "p.txt"))))
    sink("a")
    sink("b")
    assert (tmp_path / "p.txt").read_text() == "a\nb\n"


def test_throttle_reports_at_most_once_per_interval() -> None:
    now = [0.0]
    throttle = Throttle(every_s=10.0, clock=lambda: now[0])
    seen = []
    for t in (0.0, 3.0, 9.9, 10.0, 12.0, 25.0):
        now[0] = t
        seen.append(throttle.due())
    assert seen == [True, False, False, True, False, True]
