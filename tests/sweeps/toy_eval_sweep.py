"""A second sweep written against the public engine API only: no training step, 2,400 tasks in chunks.

Two points name a "model" (a scale); each is evaluated on 4 prompts x 300 seeds, 100 tasks per chunk, over 2
actors that load a model once and keep it. Every task appends a line to `<workdir>/evaluated.txt` (the test
counts them); seed 0 of each prompt also returns a PNG image. The report logs a table and an image.

    python tests/sweeps/toy_eval_sweep.py WORKDIR
"""

from __future__ import annotations

import hashlib
import io
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sweeps.engine import Artifact, Evaluation, Grid, Report, Resources, RunOptions, Sweep, run
from sweeps.engine.tables import aggregate, new_figure

PROMPTS = ("a cat", "a dog", "a van gogh painting", "an astronaut")
SEEDS = range(300)


def png(value: float) -> bytes:
    """A small PNG whose grey level is `value` (0..1)."""
    figure, axes = new_figure(1, 1)
    axes.imshow([[value]], cmap="gray", vmin=0, vmax=1)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def make_sweep(workdir: Path) -> Sweep:
    """The toy sweep, writing its task log into `workdir`."""
    log = workdir / "evaluated.txt"

    def load(ctx):  # a "model" is its scale; loading it takes a moment, so actors keep it
        time.sleep(0.2)
        return {"scale": ctx.params["scale"]}

    def tasks(outcome):
        return [{"prompt": p, "seed": s} for p in PROMPTS for s in SEEDS]

    def evaluate(model, task):
        digest = hashlib.sha256(f"{task['prompt']}/{task['seed']}".encode()).digest()
        score = model["scale"] * digest[0] / 255
        with open(log, "a") as handle:
            handle.write(f"{model['scale']} {task['prompt']} {task['seed']}\n")
        time.sleep(0.004)
        row = {"score": score}
        if task["seed"] == 0:
            row["image"] = Artifact(f"images/{task['prompt'].replace(' ', '-')}.png", png(min(score, 1.0)))
        return row

    def report(frame, grid):
        table = aggregate(frame, ["scale", "prompt"], "score", over=None)
        return Report(tables={"score_by_prompt": table}, artifacts={"overview.png": png(0.5)}, console=())

    return Sweep(
        name="toy-eval",
        grid=Grid(base={"scale": 1.0}, vary={"scale": [1.0, 2.0]}),
        model=lambda params, stages: f"model-{params['scale']}",
        evaluation=Evaluation(
            load=load,
            tasks=tasks,
            run=evaluate,
            actors=2,
            chunk_size=100,
            resources=Resources(cpu=0.5),
            summarize=lambda rows: {"mean_score": sum(r["score"] for r in rows) / len(rows)},
        ),
        report=report,
    )


if __name__ == "__main__":
    workdir = Path(sys.argv[1])
    options = RunOptions(
        storage_path=str(workdir / "storage"), tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}", num_cpus=2
    )
    result = run(make_sweep(workdir), options)
    sys.exit(0 if all(o.error is None for o in result.outcomes) and len(result.outcomes) == 2 else 1)
