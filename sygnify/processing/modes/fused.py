"""Chunks of an aggregation run as one Polars streaming query.

When :attr:`Job.fusable` holds (errors raise, no schema to enforce, no memory budget,
a lazy transform), nothing observable depends on where chunks start and end: the query
engine's own batches bound memory, and a query over many chunks saves a partial aggregate
and a merge per chunk. Parallel mode's remote tasks run their parts this way, and the
sequential modes run consecutive parts as queries paced to take about
``QUERY_SECONDS`` each, so that progress still advances about once a second. A query that
fails is redone chunk by chunk, where the error policy reports it with its chunk.

>>> a = FilePart(0, "t.parquet", "t.parquet", "parquet", row_groups=(0,), rows=10, first_row=0)
>>> b = FilePart(1, "t.parquet", "t.parquet", "parquet", row_groups=(1,), rows=10, first_row=10)
>>> [(p.first_row, p.rows, p.row_groups) for p in contiguous([a, b])]
[(0, 20, (0, 1))]
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

import polars as pl

from sygnify.processing.aggregate import Partial
from sygnify.processing.chunk import ChunkOutcome, ChunkProcessor
from sygnify.processing.parts import FilePart, Part
from sygnify.processing.sources import FileSource

if TYPE_CHECKING:
    from sygnify.processing.job import Job

__all__ = ["QUERY_SECONDS", "contiguous", "fused_partial", "run_paced", "run_paced_aggregation"]

#: Seconds of work one sequential fused query covers, at the measured pace.
QUERY_SECONDS = 1.0

#: The clock that measures the pace.
clock = time.perf_counter


def contiguous(parts: list[Part]) -> list[Part]:
    """``parts`` with runs of adjacent row groups of one file joined into one part."""
    joined: list[Part] = []
    for part in parts:
        last = joined[-1] if joined else None
        if (
            isinstance(part, FilePart)
            and isinstance(last, FilePart)
            and part.path == last.path
            and last.first_row is not None
            and last.rows is not None
            and part.first_row == last.first_row + last.rows
            and part.rows is not None
        ):
            groups = (last.row_groups or ()) + (part.row_groups or ())
            joined[-1] = replace(last, rows=last.rows + part.rows, row_groups=groups)
        else:
            joined.append(part)
    return joined


def fused_partial(
    processor: ChunkProcessor, parts: list[Part], rows: int
) -> tuple[list[ChunkOutcome], Partial] | None:
    """The partial aggregate of all of ``parts`` as one query, with one outcome per chunk
    of ``rows`` rows, labelled as the chunked path labels them (chunk counts and progress
    do not depend on fusing; each outcome is marked ``partial_merged``). None when a part
    cannot be scanned, its schema is not the expected one, or the query fails."""
    aggregate = processor.plan.aggregate
    assert aggregate is not None
    started = time.perf_counter()
    found = [part.scan() for part in contiguous(parts)]
    scans: list[pl.LazyFrame] = [scan for scan in found if scan is not None]
    if not scans or len(scans) != len(found):
        return None
    try:
        if not all(processor.scannable(scan) for scan in scans):
            return None
        partial = aggregate.partial(processor.plan.apply(pl.concat(scans)))
    except Exception:
        return None
    outcomes = [
        ChunkOutcome(label, rows_in=count, partial_merged=True)
        for part in parts
        for label, _, count in part.chunk_spans(rows)
    ]
    if not outcomes:  # only empty parts: no chunk to carry a partial, as in the chunked path
        return None
    outcomes[0].duration_s = time.perf_counter() - started
    return outcomes, partial


def run_paced(job: Job, parts: Iterable[Part], rows: int, seconds: float | None = None) -> None:
    """Aggregate ``parts`` in order, consecutive parts as one query each: the first part
    alone, then as many as take about ``seconds`` (default :data:`QUERY_SECONDS`) at the
    pace measured so far."""
    seconds = QUERY_SECONDS if seconds is None else seconds
    pending = list(parts)
    per_row: float | None = None
    index = 0
    while index < len(pending):
        # Parts hold whole row groups, so they may be larger than ``rows``: count rows.
        budget = 0.0 if per_row is None else seconds / max(per_row, 1e-12)
        group = [pending[index]]
        planned = pending[index].rows or rows
        while index + len(group) < len(pending):
            following = pending[index + len(group)].rows or rows
            if planned + following > budget:
                break
            group.append(pending[index + len(group)])
            planned += following
        started = clock()
        fused = fused_partial(job.processor, group, rows)
        if fused is None:
            for part in group:
                for outcome in job.processor.run_part(part, rows):
                    job.absorb(outcome)
        else:
            outcomes, partial = fused
            outcomes[0].partial, outcomes[0].partial_merged = partial, False
            for outcome in outcomes:
                job.absorb(outcome)
        per_row = (clock() - started) / max(1, planned)
        index += len(group)


def run_paced_aggregation(job: Job, rows: int) -> bool:
    """Run ``job`` with :func:`run_paced` when it is an aggregation over local Parquet
    that :attr:`Job.fusable` allows; False (nothing done, nothing read) otherwise."""
    source = job.source
    if job.plan.aggregate is None or not job.fusable or not isinstance(source, FileSource):
        return False
    if not source.scannable():
        return False
    run_paced(job, source.parts(rows), rows)
    return True
