"""Parallel mode: parts of the source on an executor, at most N in flight.

File parts travel as (path, row groups), so workers read their own data; in-memory and
streamed sources are shipped by value. Results are correct whatever the completion order:
dataset sinks name files after the part, collected output is put back in source order,
and aggregations merge order-independent partials.

On executors in other processes (``remote``), an aggregation over files runs as tasks of
contiguous parts (one per slot in flight, at most ``MAX_PARTS_PER_TASK`` parts each): each
worker processes its parts one chunk at a time, merges their partials itself and sends one
partial back as Arrow IPC, so the parent receives and merges a few partials instead of one
per chunk. When :attr:`Job.fusable` allows it, tasks start at one per worker and a
task's parts run as one Polars streaming query (adjacent row groups of a file read as one
slice), which saves a partial aggregate and a merge per chunk; a task whose query fails
falls back to chunks. Progress advances per task.

>>> _groups(list(range(10)), 4)
[[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl

from sygnify.processing.aggregate import Partial
from sygnify.processing.chunk import ChunkOutcome, ChunkProcessor
from sygnify.processing.executors import make_executor
from sygnify.processing.executors.local import ThreadExecutor
from sygnify.processing.job import MERGE_EVERY, Job
from sygnify.processing.modes.chunked import run_engine, source_parts
from sygnify.processing.modes.fused import fused_partial, run_paced_aggregation
from sygnify.processing.parts import Part
from sygnify.processing.result import ProcessResult
from sygnify.processing.sources import FileSource

__all__ = ["run_parallel"]

#: Parts (of ``chunk_size`` rows) in one task of a remote aggregation at most.
MAX_PARTS_PER_TASK = 16


@dataclass
class _Shipped:
    """A task's outcomes on their way back, the merged partial as Arrow IPC per frame
    (which serializes several times faster than pickling the frames)."""

    outcomes: list[ChunkOutcome]
    partial: dict[str, bytes] | None = None

    @classmethod
    def of(cls, outcomes: list[ChunkOutcome], partial: Partial | None) -> _Shipped:
        if partial is None:
            return cls(outcomes)
        encoded: dict[str, bytes] = {}
        for key, frame in partial.items():
            buffer = io.BytesIO()
            frame.write_ipc(buffer, compression="uncompressed")
            encoded[key] = buffer.getvalue()
        return cls(outcomes, encoded)

    def unpack(self) -> list[ChunkOutcome]:
        """The outcomes, the merged partial back on the first one that had a partial."""
        if self.partial is not None:
            partial = {key: pl.read_ipc(io.BytesIO(data)) for key, data in self.partial.items()}
            carrier = next(o for o in self.outcomes if o.partial_merged)
            carrier.partial, carrier.partial_merged = partial, False
        return self.outcomes


def _run_part(processor: ChunkProcessor, part: Part, rows: int) -> list[ChunkOutcome]:
    return processor.run_part(part, rows)


def _run_parts(processor: ChunkProcessor, parts: list[Part], rows: int, fuse: bool = False) -> _Shipped:
    """Run ``parts`` and merge their partial aggregates (in a worker): as one streaming
    query when ``fuse`` allows it, else one chunk at a time."""
    aggregate = processor.plan.aggregate
    assert aggregate is not None
    if fuse:
        fused = fused_partial(processor, parts, rows)
        if fused is not None:
            return _Shipped.of(*fused)
    outcomes: list[ChunkOutcome] = []
    partials: list[Partial] = []
    for part in parts:
        for outcome in processor.run_part(part, rows):
            outcomes.append(outcome)
            if outcome.failure is not None:  # the parent raises it: the rest is wasted work
                return _Shipped.of(outcomes, aggregate.merge(partials) if partials else None)
            if outcome.partial is not None:
                partials.append(outcome.partial)
                outcome.partial, outcome.partial_merged = None, True
                if len(partials) >= MERGE_EVERY:
                    partials = [aggregate.merge(partials)]
    return _Shipped.of(outcomes, aggregate.merge(partials) if partials else None)


def _groups(parts: list[Any], count: int) -> list[list[Any]]:
    """``parts`` in ``count`` contiguous groups whose sizes differ by at most one, the
    larger groups first (so that, taken in order, the workers end up with even shares)."""
    count = max(1, min(count, len(parts)))
    size, larger = divmod(len(parts), count)
    groups: list[list[Any]] = []
    start = 0
    for i in range(count):
        end = start + size + (1 if i < larger else 0)
        groups.append(parts[start:end])
        start = end
    return groups


def _tasks(job: Job, executor: Any, rows: int, in_flight: int) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """The tasks to submit: one per part, or, for an aggregation over files on a remote
    executor, one per slot in flight (parts are cheap (path, row groups) descriptors).

    Those groups run as one streaming query each (one group per worker) when
    :attr:`Job.fusable` allows it, as streaming mode does.
    """
    parts = source_parts(job, rows)
    if (
        getattr(executor, "remote", False)
        and job.plan.aggregate is not None
        and isinstance(job.source, FileSource)
    ):
        fuse = job.fusable
        listed = list(parts)
        # At least one task per worker (fused) or per slot in flight; at most
        # MAX_PARTS_PER_TASK parts per task, so progress and failures stay fine-grained.
        count = max(executor.max_workers if fuse else in_flight, math.ceil(len(listed) / MAX_PARTS_PER_TASK))
        for group in _groups(listed, count):
            yield _run_parts, (job.processor, group, rows, fuse)
        return
    for part in parts:
        yield _run_part, (job.processor, part, rows)


def run_parallel(job: Job) -> ProcessResult:
    executor = make_executor(job.executor, max_workers=job.max_workers, options=job.executor_options)
    job.tracker.result.executor = getattr(executor, "name", type(executor).__name__)
    owned = isinstance(job.executor, str)  # else the handler (or the user) owns and reuses it
    try:
        return _run_on(job, executor)
    finally:
        if owned:
            executor.close()


def _run_on(job: Job, executor: Any) -> ProcessResult:
    in_flight = job.max_in_flight or 2 * executor.max_workers
    rows = job.next_chunk_rows(share=in_flight)
    job.tracker.result.chunk_rows = rows
    # Threads share Polars' own thread pool, which already runs one query on every core:
    # a fused aggregation is fastest as consecutive queries, without a partial per thread.
    if isinstance(executor, ThreadExecutor) and not executor.remote:
        done = run_engine(job)  # one query already runs on every core
        if done is not None:
            return done
        if run_paced_aggregation(job, rows):
            return job.finish()
    processor = job.processor
    worker_writes = job.sink is not None and job.sink.parallel_safe and job.plan.aggregate is None
    if worker_writes:
        job.processor = processor.replaced(sink=job.sink)
    pending: list[Any] = []
    try:
        for fn, args in _tasks(job, executor, rows, in_flight):
            while len(pending) >= in_flight:
                done, pending = executor.wait_first(pending)
                _absorb(job, done)
            pending.append(executor.submit(fn, *args))
        while pending:
            done, pending = executor.wait_first(pending)
            _absorb(job, done)
    finally:
        job.processor = processor
        for future in pending:
            cancel = getattr(future, "cancel", None)
            if cancel is not None:
                cancel()
    return job.finish()


def _absorb(job: Job, futures: list[Any]) -> None:
    for future in futures:
        result: list[ChunkOutcome] | _Shipped = future.result()
        outcomes = result.unpack() if isinstance(result, _Shipped) else result
        for outcome in outcomes:
            job.absorb(outcome)
