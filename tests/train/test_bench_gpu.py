"""The GPU check's script runs end to end on CPU in its --smoke mode (tiny model), so it is ready when a GPU is."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_gpu_smoke_prints_every_row(tmp_path: Path) -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_gpu.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "rows.json").read_text())
    rows = {row["row"]: row for row in report["rows"]}
    assert set(rows) == {"train ZeRO-2 bf16", "train ZeRO-3 bf16", "generate watermarked", "detect (reading pass)"}
    for row in rows.values():
        assert math.isfinite(row["tokens_per_s"]) and row["tokens_per_s"] > 0, row
        assert row["row"] in done.stdout  # the printed table has the row
    assert "V=32000" in rows["detect (reading pass)"]["setting"]
    assert "ratio" in rows["generate watermarked"]["vs"] and "MFU" in rows["train ZeRO-3 bf16"]["vs"]
