"""Incremental mode: only data that is new since the last committed checkpoint.

New data is either rows whose ``cursor`` column is above the committed cursor, or files
not yet processed. Per chunk: the output is written under a deterministic label
(``part-<seq>.parquet``) and closed; the checkpoint that counts the chunks written so far
is committed atomically once ``Checkpoint.interval`` seconds have passed since the last
commit, and at the end of every file and run. A run fixes its window first (cursor range,
chunk size) and commits it, so a rerun after a crash at any point re-creates exactly the
same chunks, skips those already committed and rewrites the uncommitted ones with
identical content: no loss, no duplicates. Aggregations commit their merged partial
state next to the checkpoint, together with the chunk count, and write the final result
once per run, after its last commit (the state records which partial state was published).

Local Parquet files are read as Polars scans of each chunk's rows, so only the columns
the transform uses are read and reading, transform and partial aggregation are one query.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs

from sygnify.errors import ConfigurationError
from sygnify.io.arrow import rebatch
from sygnify.io.files import remove_temporaries
from sygnify.processing.aggregate import Partial
from sygnify.processing.checkpoint import Checkpoint, encode_value, literal
from sygnify.processing.chunk import ChunkOutcome, DeadLetter
from sygnify.processing.job import Job
from sygnify.processing.modes.chunked import file_parts_or_whole, read_part
from sygnify.processing.parts import BadRow, FilePart
from sygnify.processing.query import record, run_query
from sygnify.processing.result import ProcessResult
from sygnify.processing.sinks import CallbackSink, IPCSink, ParquetSink
from sygnify.processing.sources import FileSource

__all__ = ["run_incremental"]

logger = logging.getLogger(__name__)

#: Rows of the sample that measures the pace before chunks are fused into one query.
PACE_SAMPLE_ROWS = 65_536


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
    with checkpoint.lock():
        return _run_locked(job, checkpoint, cursor)


def _run_locked(job: Job, checkpoint: Checkpoint, cursor: str | None) -> ProcessResult:
    fingerprint = _fingerprint(job, cursor)
    state = checkpoint.load() or {"job": fingerprint, "seq": 0, "cursor": None, "files": [], "run": None}
    if state.get("job") != fingerprint:
        raise ConfigurationError(
            f"checkpoint {checkpoint.path} belongs to another job ({state.get('job')}); "
            "use a separate checkpoint per job",
            resource=checkpoint.path,
        )
    _remove_temporaries(job)
    checkpoint.sweep(state)
    runner = _Runner(job, checkpoint, state)
    if cursor:
        runner.cursor_run(cursor)
    else:
        runner.files_run()
    runner.publish()
    return runner.finish()


def _remove_temporaries(job: Job) -> None:
    """Delete what writes a crash interrupted left in the job's output directories (the
    run lock makes this run their only writer): hidden from sygnify's readers, but other
    readers glob them."""
    for target in (job.sink, job.processor.dead_letter):
        if not isinstance(target, ParquetSink | IPCSink | DeadLetter):
            continue  # a connector's or a callback's: its own writes clean up
        if isinstance(target, IPCSink) or (isinstance(target, ParquetSink) and target.single_file):
            directory, _, name = target.target.rpartition("/")  # only the file's own, beside it
            removed = remove_temporaries(directory or ".", filesystem=target.filesystem, of=name)
        else:
            removed = remove_temporaries(target.target, filesystem=target.filesystem)
        if removed:
            logger.info("incremental run: removed %d temporary file(s) of an interrupted run", len(removed))


class _Runner:
    def __init__(self, job: Job, checkpoint: Checkpoint, state: dict[str, Any]) -> None:
        self.job = job
        self.checkpoint = checkpoint
        self.state = state
        aggregate = job.plan.aggregate
        self.partial: Partial | None = None
        self._committed_at = time.monotonic()
        self._output: pl.DataFrame | None = None
        #: Seconds per chunk at the measured pace (None until measured).
        self._per_chunk_s: float | None = None
        if aggregate is not None and state.get("partial"):
            tag = state["partial"]
            self.partial = {key: checkpoint.read_table(f"{tag}.{key}") for key in state["partial_keys"]}

    # -- chunks and commits ------------------------------------------------------------

    def _chunks(self, batches: Iterator[pa.RecordBatch], rows: int, skip: int) -> Iterator[pa.RecordBatch]:
        for index, batch in enumerate(rebatch(batches, rows)):
            if index >= skip:
                yield batch

    def _process(self, batch: pa.RecordBatch, seq: int, origin: str, bad: list[BadRow]) -> None:
        self._absorb(self.job.processor.run(batch, f"{seq:08d}", origin, bad))

    def _absorb(self, outcome: ChunkOutcome, *, chunks: int = 1) -> None:
        self.job.absorb(outcome)  # partials wait in job.partials until the next commit
        self.state["run"]["chunks_done"] += chunks
        if time.monotonic() - self._committed_at >= self.checkpoint.interval:
            self._commit_progress()

    def _commit(self) -> None:
        self.checkpoint.save(self.state)
        self._committed_at = time.monotonic()

    def _commit_progress(self) -> None:
        """Commit the chunks done so far with the partial state that covers them."""
        stale = self._stage_partial()
        self._commit()
        self._drop(stale)

    def _stage_partial(self) -> str | None:
        """Merge pending partials into the state and write them beside the checkpoint (one
        commit then covers the chunk count and the partial state: both or neither).
        Returns the tag of the partial state this replaces."""
        aggregate = self.job.plan.aggregate
        if aggregate is None or not self.job.partials:
            return None
        merged = aggregate.merge([self.partial, *self.job.partials] if self.partial else self.job.partials)
        self.job.partials = []
        run = self.state["run"]
        tag = f"s{run['seq0'] + run['chunks_done']:08d}"
        for key, frame in merged.items():
            self.checkpoint.write_table(f"{tag}.{key}", frame)
        stale: str | None = self.state.get("partial")
        self.state["partial"], self.state["partial_keys"] = tag, sorted(merged)
        self.partial = merged
        return stale if stale != tag else None

    def _drop(self, stale: str | None) -> None:
        """Delete a replaced partial state (after the commit that replaced it)."""
        if stale:
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
        for path in self._file_order(source.files()):
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
            if skip == 0 and self._query_file(path, run):
                self.state["files"].append(path)
                self._end_run()
                continue
            resume = self._scan_file(path, rows, skip)
            bad: list[BadRow] = []
            keep = None if self.job.processor.on_error == "raise" else bad

            def batches(
                path: str = path, rows: int = rows, keep: list[BadRow] | None = keep
            ) -> Iterator[pa.RecordBatch]:
                for part in file_parts_or_whole(self.job, path, rows):
                    yield from read_part(self.job, part, rows, keep)

            if resume is not None:
                for index, batch in enumerate(self._chunks(batches(), rows, resume), resume):
                    taken, bad[:] = list(bad), []
                    self._process(batch, run["seq0"] + index, path, taken)
                if bad:
                    self._process(pa.record_batch({}), run["seq0"] + run["chunks_done"], path, list(bad))
            self.state["files"].append(path)
            self._end_run()

    def _file_order(self, files: list[str]) -> list[str]:
        """The order in which this run takes the files: the file of a run that a crash
        interrupted first, then the others by name.

        The committed state already counts that file's first chunks (an aggregation's
        partial state holds them, a row job's parts are written under their labels), so it
        must be resumed where it stopped before anything else takes its labels; a new file
        that sorts before it (``part-0000`` appearing after ``part-0008``'s run crashed)
        waits until it is done. A crash after any commit then leaves the same history as a
        run that was never interrupted.
        """
        run = self.state["run"]
        pending = run.get("file") if run else None
        if pending is None or pending in self.state["files"]:
            return files
        if pending not in files:
            # The file went away mid-run: what was committed of it stays counted and its
            # labels are never reused (the run ends where the crash left it).
            logger.warning(
                "incremental run: %s, interrupted after %d chunk(s), is gone; its committed "
                "chunks stay in the output",
                pending,
                run["chunks_done"],
            )
            self.state["files"].append(pending)  # were it back, its counted chunks would be again
            self._end_run()
            return files
        return [pending, *(path for path in files if path != pending)]

    def _query_file(self, path: str, run: dict[str, Any]) -> bool:
        """Process a new file as one streaming query (see
        :func:`~sygnify.processing.query.run_query`): a row-wise job's output is
        ``part-<seq0>.parquet`` of a local dataset (its dead letters
        ``dead-<seq0>-rows.parquet``), so a rerun after a crash writes the same files under the
        same names; an aggregation's partial joins the state committed at the file's end.
        False when the engine cannot, and the chunk path runs the file."""
        job = self.job
        sink = job.sink
        label = f"{run['seq0']:08d}"
        if job.plan.aggregate is not None:  # the file's partial, committed with the run's end
            outcome = run_query(job, files=[path], label=label, partial=True)
            if outcome is None or outcome.partial is None:
                return False
            record(job, outcome)
            job.add_partial(outcome.partial)
            run["chunks_done"] = 1
            return True
        if not isinstance(sink, ParquetSink):
            return False
        if sink.single_file or sink.partition_by or not isinstance(sink.filesystem, pafs.LocalFileSystem):
            return False  # one file under one label: the engine's own sink
        outcome = run_query(job, files=[path], label=label)
        if outcome is None:
            return False
        record(job, outcome)
        run["chunks_done"] = 1
        return True

    def _scan_file(self, path: str, rows: int, skip: int) -> int | None:
        """Process chunks ``skip``... of a local Parquet file as scans of their rows.

        Chunk ``k`` is the file's rows ``[k * rows, (k + 1) * rows)``, as in the batch path.
        Returns None when the file is done, else the chunk where the batch path takes over
        (the file cannot be scanned, its schema needs typing, or a chunk's query failed,
        which the batch path then reports under the error policy).
        """
        source = self.job.source
        assert isinstance(source, FileSource)
        processor = self.job.processor
        whole = file_parts_or_whole(self.job, path, 2**62)
        if len(whole) != 1 or not isinstance(whole[0], FilePart) or whole[0].rows is None:
            return skip
        scan = whole[0].scan()
        total = whole[0].rows
        try:
            if scan is None or not processor.scannable(scan):
                return skip
        except Exception:
            return skip
        seq0 = int(self.state["run"]["seq0"])
        chunks = math.ceil(total / rows)
        index = skip
        while index < chunks:
            try:
                count = self._fused_chunks(scan, index * rows, total, rows, chunks - index)
                first, end = index * rows, min(total, (index + count) * rows)
                outcome = processor.run_lazy(
                    scan.slice(first, end - first), f"{seq0 + index:08d}", end - first
                )
            except Exception:
                return index
            self._absorb(outcome, chunks=count)
            self._per_chunk_s = outcome.duration_s / max(1, end - first) * rows  # the pace, refined
            index += count
        return None

    def _fused_chunks(self, scan: pl.LazyFrame, first: int, total: int, rows: int, left: int) -> int:
        """How many chunks the next scan covers. An aggregation commits only its partial
        state, so the chunks between two commits can be one streaming query (when
        :attr:`Job.fusable` allows it): as many as fit in the commit interval at the
        measured pace (the first time, measured on a sample whose result is discarded).
        Outputs written per chunk keep one query per chunk, so that their files are the
        same whatever the pace."""
        job, interval, aggregate = self.job, self.checkpoint.interval, self.job.plan.aggregate
        if aggregate is None or not job.fusable or interval <= 0:
            return 1
        if self._per_chunk_s is None:
            sample = max(1, min(PACE_SAMPLE_ROWS, rows, total - first))
            started = time.perf_counter()
            aggregate.partial(job.plan.apply(scan.slice(first, sample)))
            self._per_chunk_s = (time.perf_counter() - started) / sample * rows
        return max(1, min(left, int(interval / max(self._per_chunk_s, 1e-9))))

    def _end_run(self, *, cursor: str | None = None) -> None:
        stale = self._stage_partial()
        run = self.state["run"]
        self.state["seq"] = run["seq0"] + run["chunks_done"]
        if cursor is not None:
            self.state["cursor"] = cursor
        self.state["run"] = None
        self._commit()
        self._drop(stale)

    def publish(self) -> None:
        """Write an aggregation's result once the run's commits are done, unless the
        committed partial state was already published (a crash between the last commit
        and this write leaves it unpublished, so the rerun writes it)."""
        aggregate, sink = self.job.plan.aggregate, self.job.sink
        if aggregate is None or self.partial is None or sink is None:
            return
        if self.state.get("published") == self.state.get("partial"):
            return
        self._output = aggregate.finalize(self.partial)
        self.checkpoint.check_lock()  # a run that lost its lock must not overwrite a newer result
        self.job.paths += sink.replace(self._output.to_arrow())
        self.state["published"] = self.state.get("partial")
        self._commit()

    def finish(self) -> ProcessResult:
        aggregate = self.job.plan.aggregate
        output = self._output
        if output is None and aggregate is not None and self.partial:
            output = aggregate.finalize(self.partial)  # nothing new: the committed result
        return self.job.finish(output=output, write_output=False)
