"""Parallel mode: parts of the source on an executor, at most N in flight.

File parts travel as (path, row groups), so workers read their own data; in-memory and
streamed sources are shipped by value. Results are correct whatever the completion order:
dataset sinks name files after the part, collected output is put back in source order,
and aggregations merge order-independent partials.
"""

from __future__ import annotations

from typing import Any

from sygnify.processing.chunk import ChunkOutcome, ChunkProcessor
from sygnify.processing.executors import make_executor
from sygnify.processing.job import Job
from sygnify.processing.result import ProcessResult
from sygnify.processing.sources import Part

__all__ = ["run_parallel"]


def _run_part(processor: ChunkProcessor, part: Part, rows: int) -> list[ChunkOutcome]:
    return processor.run_part(part, rows)


def run_parallel(job: Job) -> ProcessResult:
    executor = make_executor(job.executor, max_workers=job.max_workers, options=job.executor_options)
    job.tracker.result.executor = getattr(executor, "name", type(executor).__name__)
    in_flight = job.max_in_flight or 2 * executor.max_workers
    rows = job.next_chunk_rows(share=in_flight)
    job.tracker.result.chunk_rows = rows
    processor = job.processor
    worker_writes = job.sink is not None and job.sink.parallel_safe and job.plan.aggregate is None
    if worker_writes:
        processor = ChunkProcessor(
            processor.plan,
            schema=processor.schema,
            on_error=processor.on_error,
            dead_letter=processor.dead_letter,
            retry=processor.retry,
            sink=job.sink,
        )
    pending: list[Any] = []
    owned = isinstance(job.executor, str)  # else the handler (or the user) owns and reuses it
    try:
        for part in job.source.parts(rows):
            while len(pending) >= in_flight:
                done, pending = executor.wait_first(pending)
                _absorb(job, done)
            pending.append(executor.submit(_run_part, processor, part, rows))
        while pending:
            done, pending = executor.wait_first(pending)
            _absorb(job, done)
    finally:
        for future in pending:
            cancel = getattr(future, "cancel", None)
            if cancel is not None:
                cancel()
        if owned:
            executor.close()
    return job.finish()


def _absorb(job: Job, futures: list[Any]) -> None:
    for future in futures:
        outcomes: list[ChunkOutcome] = future.result()
        for outcome in outcomes:
            job.absorb(outcome)
