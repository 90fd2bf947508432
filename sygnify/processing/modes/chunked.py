"""Chunked mode: fixed-size chunks through the transform, one after another.

Chunk sizes shrink to respect the memory budget, following the bytes per row measured on
the data. Sequential chunks also feed streaming mode's pipeline and incremental mode.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from typing import TypeAlias

import polars as pl
import pyarrow as pa

from sygnify.processing.job import Job, adaptive_rebatch, retrying_batches
from sygnify.processing.modes.fused import run_paced_aggregation
from sygnify.processing.parts import BadRow, FilePart
from sygnify.processing.query import run_query_job
from sygnify.processing.result import ProcessResult
from sygnify.processing.sources import FileSource

__all__ = ["run_chunked", "sequential_chunks"]

#: (label, batch, bad rows, origin) of one chunk.
Chunk: TypeAlias = tuple[str, pa.RecordBatch, list[BadRow], str]

#: With a budget, read in slices of at most this many rows so chunk sizes can adapt.
READ_ROWS = 65_536


def _project(job: Job) -> tuple[str, ...] | None:
    """The Parquet columns to read: those the transform uses (see ``Plan.columns``), or
    None for all. The job's expected schema narrows to them, so that only what is read is
    typed and checked (a file that lacks a used column is still a ``SchemaError``)."""
    schema = job.processor.schema
    if not isinstance(job.source, FileSource) or job.source.format() != "parquet" or schema is None:
        return None
    columns = job.plan.columns(schema)
    if columns is None:
        return None
    job.processor = job.processor.replaced(schema=pl.Schema({name: schema[name] for name in columns}))
    return tuple(columns)


def sequential_chunks(job: Job) -> Iterator[Chunk]:
    """(label, batch, bad rows, origin) for each chunk of the source, in order.

    Parquet files are read with only the columns the transform uses (``job.processor``
    then expects those).
    """
    columns = _project(job)  # before the first chunk: the caller's job.processor changes
    return _chunks(job, columns)


def _chunks(job: Job, columns: tuple[str, ...] | None) -> Iterator[Chunk]:
    bad: list[BadRow] = []
    keep = None if job.processor.on_error == "raise" else bad
    origin = [job.source.origin]

    def read_rows() -> int:
        rows = job.next_chunk_rows()
        return min(rows, READ_ROWS) if job.budget is not None else rows

    def source_batches() -> Iterator[pa.RecordBatch]:
        for part in job.source.parts(job.next_chunk_rows()):
            origin[0] = part.origin
            if isinstance(part, FilePart):
                part = replace(part, threads=job.budget is None, columns=columns)
            yield from retrying_batches(part, read_rows(), keep, job.retry)

    observe = job.budget.observe if job.budget is not None else (lambda batch: None)
    for index, chunk in enumerate(adaptive_rebatch(source_batches(), job.next_chunk_rows, observe)):
        rows, bad[:] = list(bad), []
        yield f"{index:08d}", chunk, rows, origin[0]
    if bad:  # unparseable rows after the last good one
        yield "99999999", pa.record_batch({}), list(bad), origin[0]


def run_chunked(job: Job) -> ProcessResult:
    """Process the source chunk by chunk in this thread.

    A job the engine can run whole is one Polars streaming query
    (:func:`~sygnify.processing.query.run_query_job`): chunks then only set the size of the
    batches a sink receives.
    Local Parquet files without a memory budget go part by part, each chunk one Polars
    query over a scan of its rows (see ``ChunkProcessor.run_scan``); an aggregation that
    :attr:`Job.fusable` allows runs consecutive chunks as one query (see
    :func:`~sygnify.processing.modes.fused.run_paced`). Everything else is re-chunked from the
    source's batches, with sizes following the budget.
    """
    done = run_query_job(job)
    if done is not None:
        return done
    if job.budget is None and isinstance(job.source, FileSource):
        rows = job.next_chunk_rows()
        if run_paced_aggregation(job, rows):
            return job.finish()
        parts = iter(job.source.parts(rows))
        first = next(parts, None)
        if first is not None and isinstance(first, FilePart) and first.scan() is not None:
            for part in itertools.chain([first], parts):
                for outcome in job.processor.run_part(part, rows):
                    job.absorb(outcome)
            return job.finish()
    for label, batch, bad, origin in sequential_chunks(job):
        job.absorb(job.processor.run(batch, label, origin, bad))
    return job.finish()
