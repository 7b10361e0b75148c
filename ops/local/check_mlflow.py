"""Check a sweep's MLflow record: one parent run, every trial recorded exactly once and marked complete.

    python ops/local/check_mlflow.py --tracking-uri URI --trials N [--experiment NAME] [--save FILE]
        [--unchanged-since FILE]

--save writes each trial's run id, end time and metric history length to FILE; --unchanged-since FILE checks
that a later run (a resume) created no run and logged nothing new into the existing ones (nothing retrained).
Prints one line per trial and exits 1 with the reason when a check fails. Needs mlflow (the `sweep` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

SWEEP_TAG, TRIAL_TAG, COMPLETE_TAG, PARENT_TAG = "sweep_id", "trial_id", "trial_complete", "mlflow.parentRunId"


def snapshot(tracking_uri: str, experiment: str | None = None) -> tuple[dict[str, list], dict[str, list]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    parents: dict[str, list] = defaultdict(list)
    trials: dict[str, list] = defaultdict(list)
    experiments = [e for e in client.search_experiments() if experiment is None or e.name == experiment]
    for exp in experiments:
        for run in client.search_runs([exp.experiment_id], max_results=5000):
            tags = run.data.tags
            if TRIAL_TAG in tags:
                steps = sum(len(client.get_metric_history(run.info.run_id, m)) for m in run.data.metrics)
                trials[tags[TRIAL_TAG]].append(
                    {
                        "run_id": run.info.run_id,
                        "parent": tags.get(PARENT_TAG),
                        "complete": tags.get(COMPLETE_TAG) == "1",
                        "status": run.info.status,
                        "end_time": run.info.end_time,
                        "metric_points": steps,
                    }
                )
            elif SWEEP_TAG in tags:
                parents[tags[SWEEP_TAG]].append(run.info.run_id)
    return parents, trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--trials", type=int, required=True, help="number of trials the sweep has")
    parser.add_argument("--experiment", default=None, help="only this MLflow experiment (default: all)")
    parser.add_argument("--save", default=None)
    parser.add_argument("--unchanged-since", default=None)
    args = parser.parse_args(argv)
    parents, trials = snapshot(args.tracking_uri, args.experiment)
    errors = []
    if len(parents) != 1 or any(len(runs) != 1 for runs in parents.values()):
        errors.append(f"expected one sweep with one parent run, found {dict(parents)}")
    parent_ids = {run_id for runs in parents.values() for run_id in runs}
    for trial_id, runs in sorted(trials.items()):
        run = runs[0]
        print(
            f"trial {trial_id}: {len(runs)} run(s), run {run['run_id']}, complete={run['complete']}, "
            f"status={run['status']}, {run['metric_points']} metric points"
        )
        if len(runs) != 1:
            errors.append(f"trial {trial_id} recorded {len(runs)} times")
        if not all(r["complete"] for r in runs):
            errors.append(f"trial {trial_id} not marked complete")
        if not all(r["parent"] in parent_ids for r in runs):
            errors.append(f"trial {trial_id} not nested under the sweep's parent run")
    if len(trials) != args.trials:
        errors.append(f"expected {args.trials} trials, found {len(trials)}")
    if args.unchanged_since:
        with open(args.unchanged_since) as handle:
            before = json.load(handle)
        now = {trial_id: runs[0] for trial_id, runs in trials.items()}
        for trial_id, run in before.items():
            if now.get(trial_id) != run:
                errors.append(f"trial {trial_id} changed since the first run: {run} -> {now.get(trial_id)}")
    if args.save:
        with open(args.save, "w") as handle:
            json.dump({trial_id: runs[0] for trial_id, runs in trials.items()}, handle, indent=1)
    for error in errors:
        print(f"MLflow check FAILED: {error}", file=sys.stderr)
    if not errors:
        print(
            f"MLflow check passed: 1 sweep, {len(trials)} trials, each recorded once and complete"
            + (", unchanged by the rerun" if args.unchanged_since else "")
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
