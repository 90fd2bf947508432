"""Chunked mode: fixed-size chunks through the transform, one after another.

Chunk sizes shrink to respect the memory budget, following the bytes per row measured on
the data. Sequential chunks also feed streaming mode's pipeline and incremental mode.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace

import pyarrow as pa

from sygnify.processing.job import Job, adaptive_rebatch, retrying_batches
from sygnify.processing.result import ProcessResult
from sygnify.processing.sources import BadRow, FilePart, FileSource

__all__ = ["run_chunked", "sequential_chunks"]

#: With a budget, read in slices of at most this many rows so chunk sizes can adapt.
READ_ROWS = 65_536


def sequential_chunks(job: Job) -> Iterator[tuple[str, pa.RecordBatch, list[BadRow], str]]:
    """(label, batch, bad rows, origin) for each chunk of the source, in order."""
    bad: list[BadRow] = []
    keep = None if job.processor.on_error == "raise" else bad
    origin = [job.source.origin]

    def read_rows() -> int:
        rows = job.next_chunk_rows()
        return min(rows, READ_ROWS) if job.budget is not None else rows

    def source_batches() -> Iterator[pa.RecordBatch]:
        for part in job.source.parts(job.next_chunk_rows()):
            origin[0] = part.origin
            if job.budget is not None and isinstance(part, FilePart):
                part = replace(part, threads=False)
            yield from retrying_batches(part, read_rows(), keep, job.retry)

    observe = job.budget.observe if job.budget is not None else (lambda batch: None)
    for index, chunk in enumerate(adaptive_rebatch(source_batches(), job.next_chunk_rows, observe)):
        rows, bad[:] = list(bad), []
        yield f"{index:08d}", chunk, rows, origin[0]
    if bad:  # unparseable rows after the last good one
        yield "99999999", pa.record_batch({}), list(bad), origin[0]


def run_chunked(job: Job) -> ProcessResult:
    """Process the source chunk by chunk in this thread.

    Local Parquet files without a memory budget go part by part, each chunk one Polars
    query over a scan of its rows (see ``ChunkProcessor.run_scan``); everything else is
    re-chunked from the source's batches, with sizes following the budget.
    """
    if job.budget is None and isinstance(job.source, FileSource):
        rows = job.next_chunk_rows()
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
