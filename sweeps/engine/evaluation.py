"""Evaluation of finished trials on a pool of Ray actors, in chunks of tasks.

A trial's evaluation tasks (every test and control, or every (prompt, seed block)) are split into chunks of
`chunk_size`. Chunks go to a pool of `actors` actors; an actor loads a model once (`load`) and keeps it while the
chunks it is given use the same model (`load_key`), and the pool prefers to hand an actor chunks of the model it
holds. Each finished chunk goes back to the driver at once, which records it, so a rerun after a crash redoes
only the chunks that were not recorded.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps.engine.errors import ConfigError
from sweeps.engine.outcomes import Artifact, TrialOutcome
from sweeps.engine.resources import Resources


@dataclass(frozen=True)
class EvalContext:
    """What `Evaluation.load` gets: the trial's checkpoint (or the model its point names), params, stage folders."""

    trial_id: str
    checkpoint: str | None
    params: dict[str, Any]
    stages: dict[str, Path]


@dataclass(frozen=True)
class Evaluation:
    """How a sweep evaluates a finished trial.

    `load(ctx)` runs in an actor and returns anything (a model, a pipeline); `tasks(outcome)` lists the trial's
    tasks (dicts); `run(loaded, task)` returns a row of results (a dict). Values of type `Artifact` in a row
    are recorded as files and the row keeps their names. `summarize(rows)` gives the trial's summary metrics
    (the only evaluation numbers that become MLflow metrics; rows go to tables). `load_key(ctx)` says which
    trials share a loaded model (default: one per checkpoint path).
    """

    load: Callable[[EvalContext], Any]
    tasks: Callable[[TrialOutcome], Sequence[Mapping[str, Any]]]
    run: Callable[[Any, Mapping[str, Any]], Mapping[str, Any]]
    actors: int = 1
    resources: Resources = field(default_factory=Resources)
    chunk_size: int = 0  # tasks per chunk; 0 puts a trial's tasks in one chunk
    summarize: Callable[[list[dict[str, Any]]], Mapping[str, float]] | None = None
    load_key: Callable[[EvalContext], Hashable] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.actors, bool) or not isinstance(self.actors, int) or self.actors < 1:
            raise ConfigError(f"evaluation.actors: expected an integer >= 1, got {self.actors!r}")
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 0:
            raise ConfigError(f"evaluation.chunk_size: expected an integer >= 0, got {self.chunk_size!r}")

    def key_of(self, ctx: EvalContext) -> Hashable:
        """The identity of the model `load(ctx)` would build."""
        return self.load_key(ctx) if self.load_key is not None else (ctx.checkpoint or ctx.trial_id)

    def chunks(self, tasks: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
        """The tasks split into chunks of `chunk_size`, in order (never an empty chunk)."""
        items = [dict(t) for t in tasks]
        size = self.chunk_size or max(1, len(items))
        return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(frozen=True)
class Chunk:
    """One job of the pool: some tasks of one trial, with what the actor needs to load its model."""

    trial_id: str
    index: int
    key: Hashable
    context: EvalContext
    tasks: list[dict[str, Any]]


@dataclass
class ChunkResult:
    """The rows of a finished chunk and the files its rows produced."""

    rows: list[dict[str, Any]]
    artifacts: list[Artifact]


class EvaluationWorker:
    """The actor body: evaluates chunks, keeping the model it loaded last while chunks reuse it."""

    def __init__(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        self._key: Hashable | None = None
        self._loaded: Any = None

    def evaluate(self, key: Hashable, context: EvalContext, tasks: list[dict[str, Any]]) -> ChunkResult:
        """Run every task of one chunk, loading the model first unless this actor already holds it."""
        if self._loaded is None or key != self._key:
            self._loaded = None  # free the previous model before loading the next
            self._loaded = self.evaluation.load(context)
            self._key = key
        rows, artifacts = [], []
        for task in tasks:
            row = {**task}
            for name, value in dict(self.evaluation.run(self._loaded, task)).items():
                if isinstance(value, Artifact):
                    artifacts.append(value)
                    row[name] = value.name
                else:
                    row[name] = value
            rows.append(row)
        return ChunkResult(rows, artifacts)


class ActorPool:
    """A pool of evaluation actors: submit chunks, poll finished ones without blocking, drain at the end.

    Actors start on the first submit (they hold no resources before there is work) and are restarted by Ray
    if they die (`max_restarts`), their chunk retried (`max_task_retries`).
    """

    def __init__(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation
        self._actors: list[Any] = []
        self._idle: dict[Any, Hashable | None] = {}  # actor -> key of the model it holds
        self._queue: deque[Chunk] = deque()
        self._inflight: dict[Any, tuple[Any, Chunk]] = {}

    def _start(self) -> None:
        import ray

        res = self.evaluation.resources
        cls = ray.remote(EvaluationWorker).options(
            num_cpus=res.cpu, num_gpus=res.gpu, max_restarts=2, max_task_retries=2
        )
        self._actors = [cls.remote(self.evaluation) for _ in range(self.evaluation.actors)]
        self._idle = dict.fromkeys(self._actors)

    def submit(self, chunk: Chunk) -> None:
        """Queue a chunk; it starts as soon as an actor is free."""
        if not self._actors:
            self._start()
        self._queue.append(chunk)
        self._dispatch()

    def _next_for(self, key: Hashable | None) -> Chunk:
        for i, chunk in enumerate(self._queue):
            if chunk.key == key:  # affinity: keep using the model the actor already holds
                del self._queue[i]
                return chunk
        return self._queue.popleft()

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            actor, key = self._idle.popitem()
            chunk = self._next_for(key)
            ref = actor.evaluate.remote(chunk.key, chunk.context, chunk.tasks)
            self._inflight[ref] = (actor, chunk)

    @property
    def pending(self) -> int:
        """Chunks queued or running."""
        return len(self._queue) + len(self._inflight)

    def poll(self, timeout: float = 0.0) -> list[tuple[Chunk, ChunkResult | BaseException]]:
        """Finished chunks as (chunk, result or the exception), waiting at most `timeout` s for the first."""
        import ray

        if not self._inflight:
            return []
        ready, _ = ray.wait(list(self._inflight), num_returns=1, timeout=timeout)
        if ready:
            more, _ = ray.wait(list(self._inflight), num_returns=len(self._inflight), timeout=0)
            ready = list(dict.fromkeys([*ready, *more]))
        done: list[tuple[Chunk, ChunkResult | BaseException]] = []
        for ref in ready:
            actor, chunk = self._inflight.pop(ref)
            try:
                done.append((chunk, ray.get(ref)))
            except Exception as err:  # an evaluation error is recorded on its trial, not fatal to the sweep
                done.append((chunk, err))
            self._idle[actor] = chunk.key
        self._dispatch()
        return done

    def shutdown(self) -> None:
        """Kill the actors (their resources go back to Ray)."""
        import ray

        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self._actors, self._idle = [], {}
