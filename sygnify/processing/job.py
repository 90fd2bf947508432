"""The state of one ``process()`` call, shared by the modes: chunk sizing, outcomes, output."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from sygnify.errors import SygnifyError, TransientError
from sygnify.processing.aggregate import Partial
from sygnify.processing.chunk import ChunkOutcome, ChunkProcessor
from sygnify.processing.memory import MemoryBudget, PeakMemory
from sygnify.processing.parts import BadRow, Part
from sygnify.processing.plan import Plan
from sygnify.processing.result import ProcessResult, Tracker
from sygnify.processing.sinks import Sink
from sygnify.processing.sources import Source
from sygnify.resilience import RetryPolicy

__all__ = ["Job", "adaptive_rebatch", "retrying_batches"]

#: Merge accumulated partial aggregates once this many are pending (bounds memory).
MERGE_EVERY = 16


@dataclass
class Job:
    source: Source
    plan: Plan
    processor: ChunkProcessor
    sink: Sink | None
    tracker: Tracker
    chunk_rows: int
    budget: MemoryBudget | None
    peak: PeakMemory
    retry: RetryPolicy
    max_workers: int = 1
    executor: Any = "threads"
    executor_options: dict[str, Any] = field(default_factory=dict)
    max_in_flight: int | None = None
    user_schema: bool = False
    #: Chunks alive at once (the streaming pipeline holds several): each gets its share.
    chunks_alive: int = 1
    #: Bytes per row in the engine, measured once per job by the query module's budget model.
    row_bytes: float | None = None
    collected: list[tuple[str, pa.Table]] = field(default_factory=list)
    partials: list[Partial] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    @property
    def fusable(self) -> bool:
        """Whether the chunk loop may fuse chunks into one Polars streaming query (see
        :mod:`~sygnify.processing.modes.fused`): errors raise, no schema to enforce, no
        memory budget to steer chunks by, and the transform stays lazy. (The whole-run
        query of :mod:`~sygnify.processing.query` needs none of these.)"""
        return (
            self.processor.on_error == "raise"
            and not self.user_schema
            and self.budget is None
            and self.plan.streamable
        )

    def next_chunk_rows(self, share: int | None = None) -> int:
        """Rows for the next chunk: the user's ceiling, reduced to fit the memory budget."""
        if self.budget is None:
            return self.chunk_rows
        per_row = self.budget.bytes_per_row
        if not per_row:
            try:
                per_row = self.source.bytes_per_row()
            except SygnifyError:  # the first file cannot be read: the run dead-letters it
                per_row = None
        rows = self.budget.chunk_rows(bytes_per_row=per_row, ceiling=self.chunk_rows)
        return max(1, rows // (share or self.chunks_alive))

    def absorb(self, outcome: ChunkOutcome, *, write: bool = True) -> None:
        """Account for a finished chunk: raise its failure, write or keep its output."""
        if outcome.failure is not None:
            raise outcome.failure
        for error in outcome.errors:
            self.tracker.error(error)
        self.tracker.result.dead_letters += outcome.dead_rows
        produced = outcome.table is not None or outcome.partial is not None or outcome.partial_merged
        if outcome.errors and outcome.rows_out == 0 and not produced:
            self.tracker.result.skipped_chunks += 1
        dead = [p for p in outcome.paths if "/dead-" in p]
        self.tracker.result.dead_letter_paths += dead
        self.paths += [p for p in outcome.paths if "/dead-" not in p]
        if outcome.partial is not None:
            self.add_partial(outcome.partial)
        elif outcome.table is not None:
            if self.sink is not None and write:
                self.paths += self.sink.write(outcome.table, outcome.label)
            elif self.sink is None:
                self.collected.append((outcome.label, outcome.table))
        self.tracker.chunk(outcome.rows_in, outcome.rows_out, outcome.duration_s)
        if self.budget is not None:
            # Freed Arrow buffers go back to the OS, so the measurement is the run's own use.
            pa.default_memory_pool().release_unused()
            self.budget.feedback(self.peak.window())
        else:
            self.peak.sample()

    def add_partial(self, partial: Partial) -> None:
        assert self.plan.aggregate is not None
        self.partials.append(partial)
        if len(self.partials) >= MERGE_EVERY:
            self.partials = [self.plan.aggregate.merge(self.partials)]

    def merged_partial(self) -> Partial | None:
        if not self.partials or self.plan.aggregate is None:
            return None
        self.partials = [self.plan.aggregate.merge(self.partials)]
        return self.partials[0]

    def finish(self, *, output: pl.DataFrame | None = None, write_output: bool = True) -> ProcessResult:
        """Finalize aggregations, close the sink, fill in the result."""
        result = self.tracker.result
        aggregate = self.plan.aggregate
        if output is None and aggregate is not None:
            merged = self.merged_partial()
            output = aggregate.finalize(merged) if merged is not None else None
        if output is None and self.sink is None and self.collected:
            self.collected.sort(key=lambda item: item[0])
            output = pl.from_arrow(
                pa.concat_tables([t for _, t in self.collected], promote_options="default")
            )  # type: ignore[assignment]
        if output is None and (self.sink is None or aggregate is not None):
            output = self.empty_output()  # no rows came: the shape the query would have given
        if output is not None and aggregate is not None:
            result.rows_out = output.height
            if self.sink is not None and write_output:
                self.paths += self.sink.replace(output.to_arrow())
        if self.sink is not None:
            self.paths += self.sink.close()
        result.output = output if self.sink is None or aggregate is not None else None
        result.paths = sorted(set(self.paths))
        final = self.tracker.finish()
        final.peak_memory = self.peak.peak
        final.peak_memory_delta = self.peak.delta
        return final

    def empty_output(self) -> pl.DataFrame | None:
        """The transform over no rows of the source's schema (None when it is unknown, or
        when no file of the source can be read: under ``skip``/``dead_letter`` they are dead
        letters, and the run ends with no output rather than with their error)."""
        try:
            schema = self.source.schema()
        except SygnifyError:
            return None
        if schema is None:
            return None
        empty = pl.from_arrow(schema.empty_table())
        assert isinstance(empty, pl.DataFrame)
        try:
            return self.plan.whole(empty.lazy()).collect()
        except Exception:  # a transform that cannot take an empty frame: nothing to show
            return None


def adaptive_rebatch(
    batches: Iterable[pa.RecordBatch], size: Callable[[], int], observe: Callable[[pa.RecordBatch], None]
) -> Iterator[pa.RecordBatch]:
    """Re-chunk ``batches`` into chunks of ``size()`` rows, asking ``size()`` afresh per chunk."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    target = size()
    for batch in batches:
        observe(batch)
        if pending and batch.schema != pending[0].schema:  # never glue files of different schemas
            yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
            pending, pending_rows = [], 0
            target = size()
        offset = 0
        while offset < batch.num_rows:
            take = min(target - pending_rows, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            pending_rows += take
            offset += take
            if pending_rows >= target:
                yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
                pending, pending_rows = [], 0
                target = size()
    if pending_rows:
        yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)


def retrying_batches(
    part: Part, rows: int, bad_rows: list[BadRow] | None, retry: RetryPolicy
) -> Iterator[pa.RecordBatch]:
    """A part's batches; a transient failure re-reads the part and skips what was delivered."""
    delivered = 0
    attempt = 0
    while True:
        attempt += 1
        seen = 0
        try:
            for batch in part.batches(rows, bad_rows):
                end = seen + batch.num_rows
                if end > delivered:
                    piece = batch.slice(delivered - seen) if seen < delivered else batch
                    delivered = end
                    yield piece
                seen = end
            return
        except TransientError as exc:
            if attempt >= retry.max_attempts:
                raise
            retry.sleep(retry.delay_for(attempt, exc))
        except SygnifyError:
            raise
