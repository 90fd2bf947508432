"""Chunked mode: fixed-size chunks through the transform, one after another.

Chunk sizes shrink to respect the memory budget, following the bytes per row measured on
the data. Sequential chunks also feed streaming mode's pipeline and incremental mode.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from sygnify.processing.job import Job, adaptive_rebatch, retrying_batches
from sygnify.processing.result import ProcessResult
from sygnify.processing.sources import BadRow

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
            yield from retrying_batches(part, read_rows(), keep, job.retry)

    observe = job.budget.observe if job.budget is not None else (lambda batch: None)
    for index, chunk in enumerate(adaptive_rebatch(source_batches(), job.next_chunk_rows, observe)):
        rows, bad[:] = list(bad), []
        yield f"{index:08d}", chunk, rows, origin[0]
    if bad:  # unparseable rows after the last good one
        yield "99999999", pa.record_batch({}), list(bad), origin[0]


def run_chunked(job: Job) -> ProcessResult:
    """Process the source chunk by chunk in this thread."""
    for label, batch, bad, origin in sequential_chunks(job):
        job.absorb(job.processor.run(batch, label, origin, bad))
    return job.finish()
