"""``LargeDataHandler.process`` on a stream source: the stream runtime with a transform, no model.

A Kafka, Redis Streams, NATS JetStream or MQTT source (any
:class:`~sygnify.streams.StreamSource`) runs through the same
:class:`~sygnify.processing.stream_run.StreamRun` as ``RealTimeML.stream``: the same
micro-batches, windows, checkpoints and sinks, with a transform where a model would score.

- **No window**: ``transform`` (row-local steps: expressions, a function of a LazyFrame or
  DataFrame) runs on each micro-batch; a micro-batch waits at most ``max_latency`` seconds.
- **window=** (``Tumbling``/``Sliding``/``Session`` with ``time=``, or ``Count``), ``key=``:
  ``transform`` ends in an :class:`~sygnify.processing.Aggregate`, computed per window and
  key (the steps before it run on each batch as it arrives, before the rows join windows).
  Windows close on event time (``allowed_lateness=``) and on wall-clock idleness
  (``close_after=``); late rows are dropped (counted) or, with ``on_late="dead_letter"``,
  go to the source's dead letters.
- **checkpoint=PATH** (local or ``s3://...``): window state, source progress and undelivered
  results are saved atomically, source batches are acknowledged at each save, and every
  result reaches ``sink`` exactly once across crashes (see
  :mod:`~sygnify.processing.stream_run`). Without it: at-least-once.
- **on_error**: a record the transform fails on is found by bisection (about 2·log2(n)
  extra calls per bad record) and ``skip``-ped (counted) or sent to ``dead_letter=`` (a
  directory) or, without one, to the source's dead-letter target, with the reason; the rest
  of the batch goes on. ``raise`` ends the run with the typed error a file source would
  raise (``DataQualityError``, ``SchemaError``), leaving the failed batch unacknowledged.

The run ends when the source closes, after ``idle_timeout`` seconds without records, or on
:meth:`LargeDataHandler.stop` (safe from another thread or a signal handler), committing what
was processed.

>>> import polars as pl
>>> from sygnify.processing import Aggregate, LargeDataHandler
>>> from sygnify.streams.memory import MemoryLog, MemorySource
>>> from sygnify.streams.windows import Tumbling
>>> log = MemoryLog([{"user": u, "t": float(t), "amount": 1.0} for u, t in [("a", 1), ("b", 2), ("a", 12)]])
>>> result = LargeDataHandler(progress=False).process(
...     MemorySource(log), transform=Aggregate(by="user", total=("amount", "sum")),
...     window=Tumbling(10), time="t", idle_timeout=0.2)
>>> result.output.sort("window_start", "user").rows()
[('a', 0.0, 10.0, 1.0), ('b', 0.0, 10.0, 1.0), ('a', 10.0, 20.0, 1.0)]
>>> result.rows_in, log.committed("default")
(3, 3)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import polars as pl
import pyarrow as pa

from sygnify.errors import ConfigurationError, DataQualityError, SygnifyError
from sygnify.processing.chunk import DeadLetter, ErrorPolicy, classify_error
from sygnify.processing.plan import Plan
from sygnify.processing.result import ChunkError, ProcessResult
from sygnify.processing.sinks import Sink
from sygnify.processing.stream_processor import Item, StreamProcessor, normalize
from sygnify.processing.stream_run import StreamRun, as_checkpoint, stream_sink
from sygnify.streams.base import BaseSource

__all__ = ["is_stream_source", "run_stream"]

_SOURCE_ROW = "__sygnify_source_row"  # a row's index in its source batch, through the steps


def is_stream_source(source: Any) -> bool:
    """Whether ``source`` is a stream source (``read(max_records=, timeout=)`` and ``close()``)."""
    if isinstance(source, BaseSource):
        return True
    return (
        callable(getattr(source, "read", None))
        and callable(getattr(source, "close", None))
        and hasattr(source, "closed")
    )


class _Abort(Exception):
    """Carries the typed error out of the stream runtime when ``on_error="raise"`` (a record
    error inside it would be isolated by bisection instead)."""

    def __init__(self, error: SygnifyError) -> None:
        super().__init__(str(error))
        self.error = error


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _apply(plan: Plan, table: pa.Table, *, record_errors: bool) -> pa.Table:
    """``plan``'s steps over ``table``; a failure is a DataQualityError (the records' fault,
    isolated by bisection) or, with ``record_errors=False``, ends the run with the error a
    file source would raise (see :func:`~sygnify.processing.chunk.classify_error`)."""
    try:
        lazy = _frame(table).lazy()
        for step in plan.steps:
            lazy = step(lazy)
        return lazy.collect().to_arrow()
    except ConfigurationError:
        raise  # the transform itself is wrong (it returned something else): not a record's fault
    except (pl.exceptions.PolarsError, SygnifyError, ValueError, TypeError, ArithmeticError) as exc:
        kind = type(classify_error(exc, "", "stream"))  # SchemaError or DataQualityError, as for files
        message = f"transform failed: {type(exc).__name__}: {exc}"
        if record_errors:
            raise DataQualityError(message, resource="stream") from exc
        raise _Abort(kind(message, resource="stream")) from exc


class _Rejects:
    """Where rows the transform fails on go, and their count."""

    def __init__(self, on_error: ErrorPolicy, dead_letter: DeadLetter | None, result: ProcessResult) -> None:
        self.on_error, self.dead_letter, self.result = on_error, dead_letter, result
        self.batches = 0

    def wrap(self, item: Item) -> Item:
        """``item`` whose ``reject`` follows the error policy."""
        source_reject = item.reject
        table = item.table

        def reject(rows: Sequence[int], reasons: Sequence[str]) -> None:
            if not rows:
                return
            self.batches += 1
            self.result.dead_letters += len(rows)
            action = "skipped" if self.on_error == "skip" else "dead_letter"
            self.result.errors.append(
                ChunkError(self.batches, "stream", "DataQualityError", reasons[0], len(rows), action)
            )
            if self.on_error == "skip":
                return
            if self.dead_letter is not None:
                bad = _frame(table.take(pa.array(list(rows), pa.int64())))
                path = self.dead_letter.write(
                    bad, f"stream-{self.batches:08d}", "rows", "stream", pl.Series("reason", list(reasons))
                )
                self.result.dead_letter_paths.append(path)
            elif source_reject is not None:
                source_reject(rows, reasons)

        return Item(item.table, item.ack, reject, item.retain, item.positions)


class TransformProcessor(StreamProcessor):
    """A :class:`StreamProcessor` whose items first go through row-local steps (windowed runs:
    the steps before the ``Aggregate``), counting the records it takes in."""

    def __init__(
        self, *args: Any, steps: Plan | None, rejects: _Rejects, result: ProcessResult, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.steps, self.rejects, self.result = steps, rejects, result

    def feed(
        self, item: Any, *, lagging: Sequence[str] | None = None
    ) -> list[tuple[pa.Table, list[Callable[[], None]]]]:
        normalized = self.rejects.wrap(normalize(item))
        self.result.rows_in += normalized.table.num_rows
        if self.steps is not None and self.steps.steps and normalized.table.num_rows:
            normalized = self._prepared(normalized)
        return super().feed(normalized, lagging=lagging)

    def _prepared(self, item: Item) -> Item:
        """``item`` after the steps; rows they fail on are rejected, the rest go on."""
        assert self.steps is not None
        table = item.table.append_column(_SOURCE_ROW, pa.array(range(item.table.num_rows), pa.int64()))
        bad: list[tuple[int, str]] = []
        out = _isolate(self.steps, table, bad, raise_errors=self.rejects.on_error == "raise")
        if bad and item.reject is not None:
            item.reject([row for row, _ in bad], [reason for _, reason in bad])
        if _SOURCE_ROW not in out.column_names:
            raise ConfigurationError(
                "a windowed stream's steps before the Aggregate must keep the batch's columns "
                "(filter, with_columns, joins): a select() drops the row bookkeeping"
            )
        if not out.num_rows:  # every row filtered out or rejected: nothing joins a window
            return Item(item.table.slice(0, 0), item.ack, item.reject, item.retain, None)
        rows = out.column(_SOURCE_ROW).to_pylist()
        out = out.drop_columns([_SOURCE_ROW])
        positions = item.positions

        def mapped_positions() -> Sequence[tuple[str, Any]] | None:
            found = positions() if positions is not None else None
            return None if found is None else [found[row] for row in rows]

        original = item.reject

        def reject(indices: Sequence[int], reasons: Sequence[str]) -> None:
            if original is not None:
                original([rows[i] for i in indices], reasons)

        return Item(out, item.ack, reject, item.retain, mapped_positions if positions is not None else None)


def _isolate(plan: Plan, table: pa.Table, bad: list[tuple[int, str]], *, raise_errors: bool) -> pa.Table:
    """``plan`` over ``table``; on a record error, bisect to find the records and leave them out."""
    try:
        return _apply(plan, table, record_errors=not raise_errors)
    except DataQualityError as exc:
        if table.num_rows <= 1:
            if table.num_rows:
                bad.append((int(table.column(_SOURCE_ROW)[0].as_py()), str(exc)))
            return table.slice(0, 0).drop_columns([c for c in table.column_names if c != _SOURCE_ROW])
    half = table.num_rows // 2
    parts = [
        _isolate(plan, table.slice(0, half), bad, raise_errors=raise_errors),
        _isolate(plan, table.slice(half), bad, raise_errors=raise_errors),
    ]
    parts = [part for part in parts if part.num_rows] or parts[:1]
    return pa.concat_tables(parts, promote_options="permissive")


class _Recording(Sink):
    """A stream's sink, keeping what each write wrote in ``paths`` (``ProcessResult.paths``)."""

    def __init__(self, inner: Any, paths: list[str]) -> None:
        self.inner, self.paths = inner, paths
        self.name = str(getattr(inner, "name", "sink"))
        self.idempotent = bool(getattr(inner, "idempotent", False))

    def write(self, table: pa.Table, label: str) -> list[str]:
        written = list(self.inner.write(table, label) or [])
        self.paths.extend(path for path in written if path not in self.paths[-len(written) :])
        return written

    def close(self) -> list[str]:
        closed = list(self.inner.close() or [])
        self.paths.extend(path for path in closed if path not in self.paths)
        return closed


def run_stream(
    source: Any,
    transform: Any,
    *,
    sink: Any,
    checkpoint: Any,
    on_error: ErrorPolicy,
    dead_letter: str | None,
    options: dict[str, Any],
    started: Callable[[StreamRun], None],
) -> ProcessResult:
    """Run ``source`` through ``transform`` until it closes, idles out or is stopped
    (``started`` gets the run first, whose ``stop()`` ends it)."""
    plan = Plan.of(transform)
    window = options.get("window")
    result = ProcessResult(mode="streaming")
    rejects = _Rejects(on_error, DeadLetter(dead_letter) if dead_letter is not None else None, result)
    record_errors = on_error != "raise"
    lateness = options.get("allowed_lateness") or 0.0
    common: dict[str, Any] = {
        "include_input": False,
        "null_features": "keep",
        "max_latency": options.get("max_latency") if options.get("max_latency") is not None else 0.05,
    }
    if window is None:
        for name in ("time", "key", "close_after", "on_late"):
            if options.get(name) is not None:
                raise ConfigurationError(f"{name}= applies to windowed streams: give window= too")
        if lateness:
            raise ConfigurationError("allowed_lateness= applies to windowed streams: give window= too")
        if plan.aggregate is not None:
            raise ConfigurationError(
                "an Aggregate over a stream needs window= (e.g. Tumbling(60), time='ts'): "
                "an unbounded stream has no last row to aggregate to"
            )

        def score(features: pa.Table, keys: Any) -> pa.Table:
            return _apply(plan, features, record_errors=record_errors)

        processor: StreamProcessor = TransformProcessor(
            score,
            "transform",
            "streaming",
            time.monotonic,
            steps=None,
            rejects=rejects,
            result=result,
            **common,
        )
    else:
        if plan.aggregate is None:
            raise ConfigurationError(
                "a windowed stream's transform must end in an Aggregate (e.g. "
                "Aggregate(by='user', total=('amount', 'sum'))); to run a model over each window "
                "use RealTimeML.stream(mode='windowing')"
            )
        if isinstance(lateness, timedelta):
            lateness = lateness.total_seconds()

        def identity(features: pa.Table, keys: Any) -> pa.Table:
            return features

        processor = TransformProcessor(
            identity,
            "transform",
            "aggregation",
            time.monotonic,
            steps=Plan(plan.steps),
            rejects=rejects,
            result=result,
            aggregate=plan.aggregate,
            window=window,
            time=options.get("time"),
            key=options.get("key"),
            allowed_lateness=lateness,
            close_after=options.get("close_after"),
            on_late=options.get("on_late") or "drop",
            **common,
        )
    interval = options.get("checkpoint_interval")
    if checkpoint is None and interval is not None:
        raise ConfigurationError("checkpoint_interval= needs checkpoint=")
    run = StreamRun(
        processor,
        source,
        notify=lambda event, payload: None,
        sink=None if sink is None else _Recording(stream_sink(sink), result.paths),
        checkpoint=None if checkpoint is None else as_checkpoint(checkpoint, interval),
        idle_timeout=options.get("idle_timeout"),
    )
    started(run)
    began = time.perf_counter()
    outputs: list[pa.Table] = []
    try:
        for table in run:
            result.rows_out += table.num_rows
            result.chunks += 1
            if sink is None:
                outputs.append(table)
    except _Abort as abort:
        raise abort.error from abort.__cause__
    finally:
        result.duration_s = time.perf_counter() - began
        if run.sink is not None:
            run.sink.close()
    if sink is None:
        frames = [_frame(t) for t in outputs]
        result.output = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    return result
