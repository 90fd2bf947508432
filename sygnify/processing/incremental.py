"""Incremental mode: only data that is new since the last committed checkpoint.

New data is either rows whose ``cursor`` column is above the committed cursor, or files
not yet processed. Per chunk: the output is written under a deterministic label
(``part-<seq>.parquet``) and closed, then the checkpoint is committed atomically. A run
fixes its window first (cursor range, chunk size) and commits it, so a rerun after a crash
at any point re-creates exactly the same chunks, skips those already committed and
rewrites at most the one in progress with identical content: no loss, no duplicates.
Aggregations keep their merged partial state next to the checkpoint and rewrite the final
result at the end of each run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl
import pyarrow as pa

from sygnify._arrow import rebatch
from sygnify.errors import ConfigurationError
from sygnify.processing.aggregate import Partial
from sygnify.processing.checkpoint import Checkpoint, encode_value, literal
from sygnify.processing.job import Job, retrying_batches
from sygnify.processing.result import ProcessResult
from sygnify.processing.sinks import CallbackSink
from sygnify.processing.sources import BadRow, FileSource

__all__ = ["run_incremental"]


def _fingerprint(job: Job, cursor: str | None) -> dict[str, Any]:
    return {
        "kind": "cursor" if cursor else "files",
        "cursor_column": cursor,
        "source": job.source.origin,
        "sink": job.sink.name if job.sink else None,
    }


def run_incremental(job: Job, checkpoint: Checkpoint, cursor: str | None) -> ProcessResult:
    if job.sink is None:
        raise ConfigurationError("incremental mode needs a sink (the output of every run is kept there)")
    if job.plan.aggregate is None and not job.sink.idempotent and not isinstance(job.sink, CallbackSink):
        raise ConfigurationError(
            f"sink {job.sink.name!r} cannot rewrite a chunk idempotently, so a crash could duplicate "
            "rows; use a Parquet dataset directory (or a callback that dedupes on its label)",
            resource=job.sink.name,
        )
    fingerprint = _fingerprint(job, cursor)
    state = checkpoint.load() or {"job": fingerprint, "seq": 0, "cursor": None, "files": [], "run": None}
    if state.get("job") != fingerprint:
        raise ConfigurationError(
            f"checkpoint {checkpoint.path} belongs to another job ({state.get('job')}); "
            "use a separate checkpoint per job",
            resource=checkpoint.path,
        )
    runner = _Runner(job, checkpoint, state)
    if cursor:
        runner.cursor_run(cursor)
    else:
        runner.files_run()
    return runner.finish()


class _Runner:
    def __init__(self, job: Job, checkpoint: Checkpoint, state: dict[str, Any]) -> None:
        self.job = job
        self.checkpoint = checkpoint
        self.state = state
        aggregate = job.plan.aggregate
        self.partial: Partial | None = None
        self._stale: str | None = None
        if aggregate is not None and state.get("partial"):
            tag = state["partial"]
            self.partial = {key: checkpoint.read_table(f"{tag}.{key}") for key in state["partial_keys"]}

    # -- chunks and commits ------------------------------------------------------------

    def _chunks(self, batches: Iterator[pa.RecordBatch], rows: int, skip: int) -> Iterator[pa.RecordBatch]:
        for index, batch in enumerate(rebatch(batches, rows)):
            if index >= skip:
                yield batch

    def _process(self, batch: pa.RecordBatch, seq: int, origin: str, bad: list[BadRow]) -> None:
        label = f"{seq:08d}"
        outcome = self.job.processor.run(batch, label, origin, bad)
        self.job.absorb(outcome)
        aggregate = self.job.plan.aggregate
        if aggregate is not None and self.job.partials:
            merged = aggregate.merge(
                [self.partial, *self.job.partials] if self.partial else self.job.partials
            )
            self.job.partials = []
            for key, frame in merged.items():
                self.checkpoint.write_table(f"s{label}.{key}", frame)
            self._stale = self.state.get("partial")
            self.state["partial"], self.state["partial_keys"] = f"s{label}", sorted(merged)
            self.partial = merged

    def _commit(self) -> None:
        self.checkpoint.save(self.state)

    def _chunk_done(self) -> None:
        # One commit covers the chunk count and the merged partial state: both or neither.
        self.state["run"]["chunks_done"] += 1
        self._commit()
        stale, self._stale = self._stale, None
        if stale and stale != self.state.get("partial"):
            for key in self.state["partial_keys"]:
                self.checkpoint.delete_side(f"{stale}.{key}")

    # -- cursor ----------------------------------------------------------------------

    def cursor_run(self, cursor: str) -> None:
        lazy = self.job.source.lazy()
        if lazy is None:
            raise ConfigurationError(
                "incremental mode with a cursor needs a scannable source (files, a connector's scan(), "
                "a frame)",
                resource=self.job.source.origin,
            )
        if cursor not in lazy.collect_schema():
            raise ConfigurationError(f"cursor column {cursor!r} is not in the source", resource=cursor)
        run = self.state["run"]
        if run is None:
            low = self.state["cursor"]
            window = lazy.filter(pl.col(cursor) > literal(low)) if low else lazy
            high = window.select(pl.col(cursor).max()).collect(engine="streaming").to_arrow().column(0)[0]
            if not high.is_valid:
                return
            run = {
                "low": low,
                "high": encode_value(high),
                "rows": self.job.next_chunk_rows(),
                "chunks_done": 0,
                "seq0": self.state["seq"],
            }
            self.state["run"] = run
            self._commit()  # the window is fixed before any output is written
        col = pl.col(cursor)
        window = lazy.filter(col <= literal(run["high"]))
        if run["low"]:
            window = window.filter(col > literal(run["low"]))
        rows, done = int(run["rows"]), int(run["chunks_done"])
        self.job.tracker.result.chunk_rows = rows
        window = window.slice(done * rows)
        frames = window.collect_batches(chunk_size=rows, maintain_order=True, engine="streaming")
        batches = (b for frame in frames for b in frame.to_arrow().to_batches())
        for index, batch in enumerate(self._chunks(batches, rows, 0), done):
            self._process(batch, run["seq0"] + index, self.job.source.origin, [])
            self._chunk_done()
        self._end_run(cursor=run["high"])

    # -- files ------------------------------------------------------------------------

    def files_run(self) -> None:
        source = self.job.source
        if not isinstance(source, FileSource):
            raise ConfigurationError(
                "incremental mode without a cursor detects new files, so the source must be a path, "
                "directory or glob; pass cursor= for other sources",
                resource=source.origin,
            )
        source.refresh()
        done = set(self.state["files"])
        for path in source.files():
            if path in done:
                continue
            run = self.state["run"]
            if run is None or run.get("file") != path:
                run = {
                    "file": path,
                    "rows": self.job.next_chunk_rows(),
                    "chunks_done": 0,
                    "seq0": self.state["seq"],
                }
                self.state["run"] = run
            rows, skip = int(run["rows"]), int(run["chunks_done"])
            self.job.tracker.result.chunk_rows = rows
            bad: list[BadRow] = []
            keep = None if self.job.processor.on_error == "raise" else bad

            def batches(
                path: str = path, rows: int = rows, keep: list[BadRow] | None = keep
            ) -> Iterator[pa.RecordBatch]:
                for part in source.file_parts(path, rows):
                    yield from retrying_batches(part, rows, keep, self.job.retry)

            for index, batch in enumerate(self._chunks(batches(), rows, skip), skip):
                taken, bad[:] = list(bad), []
                self._process(batch, run["seq0"] + index, path, taken)
                self._chunk_done()
            if bad:
                self._process(pa.record_batch({}), run["seq0"] + run["chunks_done"], path, list(bad))
                self._chunk_done()
            self.state["files"].append(path)
            self._end_run()

    def _end_run(self, *, cursor: str | None = None) -> None:
        run = self.state["run"]
        self.state["seq"] = run["seq0"] + run["chunks_done"]
        if cursor is not None:
            self.state["cursor"] = cursor
        if self.job.plan.aggregate is not None:
            self._write_aggregate()
        self.state["run"] = None
        self._commit()

    def _write_aggregate(self) -> None:
        aggregate = self.job.plan.aggregate
        if aggregate is None or self.partial is None or self.job.sink is None:
            return
        output = aggregate.finalize(self.partial)
        self.job.paths += self.job.sink.replace(output.to_arrow())

    def finish(self) -> ProcessResult:
        aggregate = self.job.plan.aggregate
        output = aggregate.finalize(self.partial) if aggregate is not None and self.partial else None
        return self.job.finish(output=output, write_output=False)
