"""Chunked mode: fixed-size chunks through the transform, one after another.

Chunk sizes shrink to respect the memory budget, following the bytes per row measured on
the data. Sequential chunks also feed streaming mode's pipeline and incremental mode.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import replace
from typing import TypeAlias

import polars as pl
import pyarrow as pa

from sygnify.processing.chunk import RUN_ERRORS, classify_error, is_fatal, raise_mapped, unreadable_row
from sygnify.processing.job import Job, adaptive_rebatch, retrying_batches
from sygnify.processing.modes.fused import run_paced_aggregation
from sygnify.processing.parts import BadRow, FilePart, Part
from sygnify.processing.query import is_local_sink, record, run_query, run_query_job
from sygnify.processing.result import ProcessResult
from sygnify.processing.sinks import ParquetSink
from sygnify.processing.sources import FileSource

__all__ = ["read_part", "run_by_file", "run_chunked", "run_engine", "sequential_chunks", "source_parts"]

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


def sequential_chunks(job: Job, first: int = 0) -> Iterator[Chunk]:
    """(label, batch, bad rows, origin) for each chunk of the source, in order, numbered
    from ``first``.

    Parquet files are read with only the columns the transform uses (``job.processor``
    then expects those).
    """
    columns = _project(job)  # before the first chunk: the caller's job.processor changes
    return _chunks(job, columns, first)


def source_parts(job: Job, rows: int) -> Iterator[Part]:
    """The parts of ``job``'s source; under ``skip`` or ``dead_letter`` a file whose parts
    cannot be listed (a Parquet file with a corrupt footer) is one part of its own, so that
    reading it fails, is counted and dead-lettered (:func:`read_part`), and the other files
    still run. Under ``raise`` the listing's error ends the run."""
    source = job.source
    if not isinstance(source, FileSource) or job.processor.on_error == "raise":
        yield from source.parts(rows)
        return
    index = 0
    for path in source.files():
        parts = file_parts_or_whole(job, path, rows, index)
        index += len(parts)
        yield from parts


def file_parts_or_whole(job: Job, path: str, rows: int, first: int = 0) -> list[Part]:
    """The parts of the file ``path`` of ``job``'s file source, numbered from ``first``; under
    ``skip`` or ``dead_letter``, a file whose parts cannot be listed (a corrupt Parquet
    footer) is one part of its own, whose reading fails and is dead-lettered."""
    source = job.source
    assert isinstance(source, FileSource)
    try:
        return source.file_parts(path, rows, first)
    except RUN_ERRORS as exc:
        if job.processor.on_error == "raise" or is_fatal(classify_error(exc, "", path)):
            raise
        return [FilePart(first, path, path, source.format(), source.filesystem, isolate=source.isolate)]


def read_part(job: Job, part: Part, rows: int, bad_rows: list[BadRow] | None) -> Iterator[pa.RecordBatch]:
    """``part``'s batches (re-read after a transient failure). A part that fails to read is,
    with ``bad_rows`` (``skip``, ``dead_letter``), one bad row naming the file and the reason
    (:func:`~sygnify.processing.chunk.unreadable_row`) after the batches read before the
    failure; without, the error, mapped onto the sygnify tree."""
    try:
        yield from retrying_batches(part, rows, bad_rows, job.retry)
    except RUN_ERRORS as exc:
        error = classify_error(exc, "", part.origin)
        if bad_rows is None or is_fatal(error):
            raise_mapped(exc, "", part.origin)
        bad_rows.append(unreadable_row(part.origin, error))


def _chunks(job: Job, columns: tuple[str, ...] | None, first: int = 0) -> Iterator[Chunk]:
    bad: list[BadRow] = []
    keep = None if job.processor.on_error == "raise" else bad
    origin = [job.source.origin]

    def read_rows() -> int:
        rows = job.next_chunk_rows()
        return min(rows, READ_ROWS) if job.budget is not None else rows

    def source_batches() -> Iterator[pa.RecordBatch]:
        for part in source_parts(job, job.next_chunk_rows()):
            origin[0] = part.origin
            if isinstance(part, FilePart):
                part = replace(part, threads=job.budget is None, columns=columns)
            yield from read_part(job, part, read_rows(), keep)

    observe = job.budget.observe if job.budget is not None else (lambda batch: None)
    for index, chunk in enumerate(adaptive_rebatch(source_batches(), job.next_chunk_rows, observe), first):
        rows, bad[:] = list(bad), []
        yield f"{index:08d}", chunk, rows, origin[0]
    if bad:  # unparseable rows after the last good one
        yield "99999999", pa.record_batch({}), list(bad), origin[0]


def run_engine(job: Job) -> ProcessResult | None:
    """The job as one Polars streaming query (:func:`~sygnify.processing.query.run_query_job`);
    if that query fails on the data, again file by file (:func:`run_by_file`); None when
    the engine cannot run it, or the files cannot be split, and the mode's loop runs it."""
    failed: list[BaseException] = []
    done = run_query_job(job, failed)
    if done is None and failed:
        return run_by_file(job)
    return done


def _splittable(job: Job) -> bool:
    """Whether each file's output can be written by itself: collected, or one part per
    label in a local dataset (a row-wise job; an aggregation re-fuses by pace instead)."""
    source, sink = job.source, job.sink
    if not isinstance(source, FileSource) or job.plan.aggregate is not None or len(source.files()) < 2:
        return False
    if sink is None:
        return True
    dataset = isinstance(sink, ParquetSink) and not sink.single_file and not sink.partition_by
    return dataset and is_local_sink(sink)


def run_by_file(job: Job) -> ProcessResult | None:
    """Redo a job whose one query failed on its data, so that only the failing region runs
    chunk by chunk: each file is one query, and a file whose query fails goes through the
    chunk loop, whose error names the chunk and whose error policy applies per chunk.
    Chunks are numbered across files as the loop would number them, each file starting
    a new chunk. None when the output cannot be split by file (the mode's loop reruns it all).
    """
    if not _splittable(job):
        return None
    assert isinstance(job.source, FileSource)
    per_chunk = max(1, job.next_chunk_rows())
    offset = 0
    for path in job.source.files():
        one = replace(job, source=job.source.only([path]))  # shares the sink, tracker and outputs
        label = f"{offset:08d}"
        outcome = run_query(one, label=label, failed=[])
        if outcome is not None:
            record(job, outcome)
            if outcome.output is not None:  # collected: record() leaves its rows to count here
                job.collected.append((label, outcome.output.to_arrow()))
                job.tracker.result.rows_out += outcome.output.height
            offset += max(1, math.ceil(outcome.rows_in / per_chunk))
            continue
        chunks = 0
        for chunk_label, batch, bad, origin in sequential_chunks(one, first=offset):
            one.absorb(one.processor.run(batch, chunk_label, origin, bad))
            chunks += 1
        offset += max(1, chunks)
    job.tracker.result.one_query = False
    return job.finish()


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
    done = run_engine(job)
    if done is not None:
        return done
    if job.budget is None and isinstance(job.source, FileSource):
        rows = job.next_chunk_rows()
        if run_paced_aggregation(job, rows):
            return job.finish()
        parts = source_parts(job, rows)
        first = next(parts, None)
        if first is not None and isinstance(first, FilePart) and first.scan() is not None:
            for part in itertools.chain([first], parts):
                for outcome in job.processor.run_part(part, rows):
                    job.absorb(outcome)
            return job.finish()
    for label, batch, bad, origin in sequential_chunks(job):
        job.absorb(job.processor.run(batch, label, origin, bad))
    return job.finish()
