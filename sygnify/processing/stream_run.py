"""The one stream runtime: :class:`StreamRun` drives a source through a :class:`StreamProcessor`.

``RealTimeML.stream`` (a model's scorer, :class:`~sygnify.ml.stream.PredictionStream`) and
``LargeDataHandler.process`` on a stream source (a transform) both run on it. Without a
checkpoint a source batch is acknowledged once all its rows' results were yielded
(at-least-once). With ``checkpoint=PATH`` (local or ``s3://...``) a stream keeps its windows, its source
progress and the results it has not delivered yet in a
:class:`~sygnify.processing.stream_state.StreamCheckpoint`; each step is

1. read a batch and skip the records the checkpoint already holds (delivered again after a
   crash: acknowledged too late),
2. feed it; windows that close are scored (streaming and batch modes score micro-batches),
3. save the state with those results (the *outbox*) atomically, at least every
   ``checkpoint_interval`` seconds and always before results leave,
4. acknowledge every batch read since the last save,
5. write the outbox to the ``sink=`` under the label of its sequence number (an idempotent
   write: the same label replaces its output), then notify and yield it.

A crash anywhere resumes from the last save: its outbox is written again under the same
label and the records it holds are skipped, so the sink gets every result exactly once.
The iterating consumer may see the last outbox again after a restart (at-least-once).
MQTT messages have no lasting position: the checkpoint keeps the session tokens (packet
identifier and a digest of the payload) of the records saved but not yet acknowledged, and a
message the broker redelivers (DUP flag, same packet identifier) with one of them is skipped.

>>> import tempfile
>>> from sygnify.ml.realtime import RealTimeML
>>> from sygnify.streams.memory import MemoryLog, MemorySource
>>> from sygnify.streams.windows import Tumbling
>>> ml = RealTimeML()
>>> _ = ml.register("s", backend="callable", fn=lambda X: X[:, 0], features=["v"])
>>> log = MemoryLog([{"t": float(t), "v": 1.0} for t in (1, 2, 11, 12, 25)])
>>> out = tempfile.mkdtemp()
>>> stream = ml.stream(MemorySource(log), model="s", mode="windowing", window=Tumbling(10),
...                    time="t", checkpoint=out + "/state.json", sink=out + "/results/",
...                    idle_timeout=0.3)
>>> [t.column("window_start").to_pylist() for t in stream]   # t=25 closes two windows; the end one
[[0.0, 0.0, 10.0, 10.0], [20.0]]
>>> log.committed("default")   # acknowledged as soon as the windows holding them were saved
5
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from sygnify.errors import ConfigurationError, SourceClosedError
from sygnify.processing.sinks import ConnectorSink, Sink, as_sink
from sygnify.processing.stream_processor import Item, Notify, StreamProcessor
from sygnify.processing.stream_state import Progress, StreamCheckpoint
from sygnify.processing.tables import DeltaSink, table_sink

__all__ = ["STOP_CHECK_S", "DurableDriver", "StreamRun", "as_checkpoint", "lagging_of", "stream_sink"]

#: The default ``poll_timeout``, the longest one ``read()`` waits: how soon a stream sees ``stop()``.
STOP_CHECK_S = 0.25

_logger = logging.getLogger(__name__)


def as_checkpoint(checkpoint: Any, interval: float | None) -> StreamCheckpoint:
    """What the user passed as ``checkpoint=`` (a path or a StreamCheckpoint)."""
    if isinstance(checkpoint, StreamCheckpoint):
        return checkpoint
    if isinstance(checkpoint, str) or hasattr(checkpoint, "__fspath__"):
        return StreamCheckpoint(str(checkpoint), interval=1.0 if interval is None else interval)
    raise ConfigurationError(
        f"checkpoint= takes a path (local or s3://...) or a StreamCheckpoint, not {type(checkpoint).__name__}"
    )


def stream_sink(sink: Any) -> Sink:
    """``sink=`` of a stream as a :class:`~sygnify.processing.sinks.Sink` writing idempotent labels.

    A dataset directory (``"out/"``, ``s3://...``) gets ``part-<label>.parquet`` per result; a
    ``(connector, target)`` pair a ``write(..., write_id=label)``; a callable ``fn(table, label)``.
    A Delta table (``"delta:PATH"`` or a :class:`~sygnify.processing.tables.DeltaSink`) commits
    each result with a Delta application transaction (skipped when committed before). A single
    ``.parquet`` file cannot replace one result, so it is refused.
    """
    delta = sink if isinstance(sink, DeltaSink) else table_sink(sink)
    if delta is not None:
        return delta.for_stream()
    resolved = as_sink(sink)
    if isinstance(resolved, ConnectorSink):
        resolved = ConnectorSink(
            resolved.connector, resolved.target, write_ids=True, **resolved.write_options
        )
    if getattr(resolved, "single_file", False):
        raise ConfigurationError(
            f"a stream's sink must take one part per result; {sink!r} is a single file: "
            "give a directory (ending in '/') instead",
            resource=str(sink),
        )
    return resolved


class DurableDriver:
    """Runs a stream source through a :class:`StreamProcessor` with a :class:`StreamCheckpoint`."""

    def __init__(
        self,
        processor: StreamProcessor,
        source: Any,
        checkpoint: StreamCheckpoint,
        *,
        sink: Sink | None,
        notify: Notify,
        stop_requested: Callable[[], bool],
        wait: Callable[[float], object],
        poll_timeout: float,
        idle_timeout: float | None,
        max_records: int,
    ) -> None:
        self.processor = processor
        self.source = source
        self.checkpoint = checkpoint
        self.sink = sink
        self.notify = notify
        self.stop_requested = stop_requested
        self.wait = wait
        self.poll_timeout = poll_timeout
        self.idle_timeout = idle_timeout
        self.max_records = max_records
        self.progress = Progress()
        self.stream_id = uuid.uuid4().hex[:12]
        self.skipped_rows = 0  # records skipped because the checkpoint already held them
        self._unacked: list[Callable[[], None]] = []
        self._acked_tags: set[int] = set()
        self._tags_since_save: list[int] = []
        self._last_save = time.monotonic()

    def __iter__(self) -> Iterator[pa.Table]:
        hold = getattr(self.source, "hold_partitions", None)
        if callable(hold):
            hold()  # per-partition state cannot follow a partition to another consumer (Kafka)
        with self.checkpoint.lock():
            saved = self.checkpoint.load()
            if saved is not None:
                self.progress = saved.progress
                if self.processor.window_state is not None:
                    saved.restore(self.processor.window_state)
                self.processor.next_tag = int(saved.extra.get("next_tag", 0))
                self.stream_id = str(saved.extra.get("stream_id", self.stream_id))
                if saved.outbox is not None:  # delivered before the crash, or not: deliver again
                    yield from self._deliver([saved.outbox], saved.sequence)
            yield from self._run()

    def _run(self) -> Iterator[pa.Table]:
        processor, source = self.processor, self.source
        idle_since = time.monotonic()
        while True:
            if self.stop_requested():
                # open windows are saved with the rest: the next run continues them
                finishing = [] if processor.window_state is not None else processor.finish()
                yield from self._step(_tables(finishing), force=True)
                return
            if getattr(source, "closed", False):
                return  # what was read since the last save is delivered again to the next run
            due = processor.due_in()
            timeout = self.poll_timeout if due is None else min(self.poll_timeout, due)
            started = time.monotonic()
            batch = source.read(max_records=self.max_records, timeout=timeout)
            if batch is None:
                results = _tables(processor.tick())
                if self.idle_timeout is not None and time.monotonic() - idle_since >= self.idle_timeout:
                    yield from self._step(results + _tables(processor.finish()), force=True)
                    return
                yield from self._step(results)
                waited = time.monotonic() - started
                if waited < timeout and processor.due_in() is None:
                    self.wait(timeout - waited)  # a read that came back early must not busy-loop
                continue
            idle_since = time.monotonic()
            lookup = getattr(batch, "row_positions", None)
            positions = lookup() if callable(lookup) else None
            item = self._fresh(batch, positions)
            self._unacked.append(batch.ack)
            if callable(getattr(batch, "retain", None)):
                batch.retain()  # acknowledged at the next save, which does not wait for windows
            self._tags_since_save.append(processor.next_tag)
            results = _tables(processor.feed(item, lagging=lagging_of(source, processor)))
            results += _tables(processor.tick())
            if processor.window_state is None and processor.mode == "streaming":
                results += _tables(processor.finish())  # each batch is scored and saved as one step
            if positions:
                self.progress.add(
                    positions,
                    in_order=bool(getattr(batch, "in_order", True)),
                    tokens=bool(getattr(batch, "session_tokens", False)),
                )
            yield from self._step(results)

    def _fresh(self, batch: Any, positions: Sequence[tuple[str, Any]] | None) -> Item:
        """The batch less the records the checkpoint holds; its rejects go to its dead letters
        while it is not acknowledged (and are logged after)."""
        table = pa.Table.from_batches([batch.batch])
        in_order = bool(getattr(batch, "in_order", True))
        tokens = bool(getattr(batch, "session_tokens", False))
        index_of: list[int] | None = None
        if positions:
            keep = _first_deliveries(positions, tokens=tokens)
            if not self.progress.empty:
                keep = [
                    kept and not self.progress.seen(key, pos, in_order=in_order, tokens=tokens)
                    for kept, (key, pos) in zip(keep, positions, strict=True)
                ]
            if not all(keep):
                index_of = [i for i, kept in enumerate(keep) if kept]
                self.skipped_rows += len(keep) - len(index_of)
                table = table.filter(pa.array(keep, pa.bool_()))
        tag = self.processor.next_tag
        raw_reject = getattr(batch, "reject", None)

        def reject(rows: Sequence[int], reasons: Sequence[str]) -> None:
            if raw_reject is None or tag in self._acked_tags:
                _log_dropped(self.processor.model, rows, reasons)
                return
            raw_reject([index_of[r] for r in rows] if index_of is not None else list(rows), reasons)

        kept = positions if index_of is None or positions is None else [positions[i] for i in index_of]
        return Item(table, None, reject, None, lambda: kept)

    def _step(self, results: list[pa.Table], *, force: bool = False) -> Iterator[pa.Table]:
        due = time.monotonic() - self._last_save >= self.checkpoint.interval
        if not (results or force or (self._unacked and due)):
            return
        sequence = self.checkpoint.save(
            self.processor.window_state,
            self.progress,
            outbox=results,
            extra={"next_tag": self.processor.next_tag, "stream_id": self.stream_id},
        )
        self._last_save = time.monotonic()
        try:
            for ack in self._unacked:
                ack()
        except SourceClosedError:
            pass  # the next run gets those records again, and skips them: they are saved
        else:
            self.progress.acknowledged()  # session tokens (MQTT) are free for reuse from now on
        self._unacked.clear()
        self._acked_tags.update(self._tags_since_save)
        self._tags_since_save.clear()
        if results:
            yield from self._deliver(results, sequence)

    def _deliver(self, results: list[pa.Table], sequence: int) -> Iterator[pa.Table]:
        if self.sink is not None:
            box = pa.concat_tables(results, promote_options="permissive") if len(results) > 1 else results[0]
            self.sink.write(box, f"{self.stream_id}-{sequence:08d}")
        for table in results:
            self.notify("prediction", table)
            yield table


def lagging_of(source: Any, processor: StreamProcessor) -> list[str] | None:
    """The source's partitions still behind, for a windowed stream (None otherwise or unknown)."""
    if processor.window_state is None:
        return None
    lagging = getattr(source, "lagging_partitions", None)
    return lagging() if callable(lagging) else None


def _tables(outputs: list[tuple[pa.Table, list[Callable[[], None]]]]) -> list[pa.Table]:
    return [table for table, _ in outputs if table.num_columns]


def _first_deliveries(positions: Sequence[tuple[str, Any]], *, tokens: bool) -> list[bool]:
    """Whether each row is the first in its batch at its position: a redelivery can share a
    batch with the copy it repeats (JetStream redelivers after ``ack_wait`` while a fetch that
    timed out still hands over the first copy), and the checkpoint only learns positions once
    the batch is taken in.

    >>> _first_deliveries([("s", 1), ("s", 2), ("s", 1)], tokens=False)
    [True, True, False]
    >>> _first_deliveries([("m", ("7:ab", False)), ("m", ("7:ab", True))], tokens=True)
    [True, False]
    """
    taken: set[tuple[str, Any]] = set()
    keep: list[bool] = []
    for key, position in positions:
        ident = (key, position[0] if tokens else tuple(position) if isinstance(position, list) else position)
        # a session token is only a repeat when flagged as redelivered (as in Progress.seen)
        keep.append(ident not in taken or (tokens and not position[1]))
        taken.add(ident)
    return keep


def _log_dropped(model: str, rows: Sequence[int], reasons: Sequence[str]) -> None:
    for row, reason in zip(rows, reasons, strict=False):
        _logger.warning("model %s: row %d of an acknowledged batch dropped: %s", model, row, reason)


class StreamRun:
    """A stream source (or an iterable, or an async iterable) run through a :class:`StreamProcessor`.

    Iterate with ``for`` (sync sources and iterables) or ``async for`` (async sources too);
    each result table is passed to ``notify("prediction", table)`` and written to ``sink``
    before it is yielded. ``idle_timeout`` ends a stream-source run after that many seconds
    without records (default: run until the consumer stops iterating or the source closes);
    ``poll_timeout`` bounds each ``read()`` wait (how soon :meth:`stop` is seen);
    ``max_records`` is the read size. ``checkpoint`` (a :class:`StreamCheckpoint`) makes
    the run exactly-once towards ``sink`` (:class:`DurableDriver`).

    >>> import pyarrow as pa
    >>> from sygnify.processing.stream_processor import StreamProcessor
    >>> double = StreamProcessor(lambda t, keys: pa.table({"y": pa.compute.multiply(t["x"], 2)}),
    ...                          "double", "batch", time.monotonic, batch_size=2, include_input=False)
    >>> run = StreamRun(double, [{"x": 1}, {"x": 2}, {"x": 3}], notify=lambda event, payload: None)
    >>> [t.column("y").to_pylist() for t in run]
    [[2, 4], [6]]
    """

    def __init__(
        self,
        processor: StreamProcessor,
        source: Any,
        *,
        notify: Notify,
        sink: Sink | None = None,
        checkpoint: StreamCheckpoint | None = None,
        idle_timeout: float | None = None,
        poll_timeout: float = STOP_CHECK_S,
        max_records: int = 1000,
    ) -> None:
        if checkpoint is not None:
            if not callable(getattr(source, "read", None)):
                raise ConfigurationError(
                    "checkpoint= needs a stream source (Kafka, Redis, NATS, MQTT or any object with "
                    "read()/close()); an iterable has no positions to resume from"
                )
            if processor.mode == "batch":
                raise ConfigurationError(
                    "checkpoint= works with the streaming, windowing and aggregation modes; batch mode "
                    "holds rows between batches that the checkpoint does not keep"
                )
        if poll_timeout <= 0 or max_records < 1:
            raise ConfigurationError("poll_timeout must be > 0 and max_records >= 1")
        self.processor = processor
        self.sink = sink
        self.checkpoint = checkpoint
        self._source = source
        self._notify = notify
        self._idle_timeout = idle_timeout
        self._poll_timeout = poll_timeout
        self._max_records = max_records
        self._stop = threading.Event()
        self._run_id = uuid.uuid4().hex[:12]
        self._written = 0

    def stop(self) -> None:
        """End the run soon (within ``poll_timeout`` plus one step), from any thread or a signal handler.

        In ``streaming`` and ``batch`` modes the buffered events are processed, yielded and
        acknowledged before iteration ends; windows still open are not emitted (without a
        checkpoint their source batches stay unacknowledged and are redelivered to the next
        run; with one they are saved and continued). The source is not closed.
        """
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    @property
    def late_rows(self) -> int:
        """Rows dropped because their window had already been emitted."""
        return self.processor.late_rows

    def _source_closed(self) -> bool:
        return bool(getattr(self._source, "closed", False))

    def _emit(self, outputs: list[tuple[pa.Table, list[Callable[[], None]]]]) -> Iterator[pa.Table]:
        for table, acks in outputs:
            if table.num_columns:
                if self.sink is not None:  # at-least-once: a restart writes unacknowledged ones again
                    self.sink.write(table, f"{self._run_id}-{self._written:08d}")
                    self._written += 1
                self._notify("prediction", table)
                yield table
            if self._source_closed():
                continue  # closed under us: what is not acknowledged yet is redelivered
            try:
                for ack in acks:  # only after the consumer took the results
                    ack()
            except SourceClosedError:
                continue  # closed between the check and the ack: redelivered, like the rest

    def _finish_on_stop(self) -> list[tuple[pa.Table, list[Callable[[], None]]]]:
        # open windows are not complete: they are rebuilt from the redelivered batches instead
        return [] if self.processor.window_state is not None else self.processor.finish()

    def __iter__(self) -> Iterator[pa.Table]:
        processor = self.processor
        if callable(getattr(self._source, "read", None)):
            yield from self._iter_source()
            return
        if isinstance(self._source, AsyncIterable):
            raise ConfigurationError("this source is asynchronous: iterate the stream with 'async for'")
        for item in self._source if isinstance(self._source, Iterable) else [self._source]:
            if self._stop.is_set():
                yield from self._emit(self._finish_on_stop())
                return
            yield from self._emit(processor.feed(item))
            yield from self._emit(processor.tick())
        yield from self._emit(processor.finish())

    def _iter_source(self) -> Iterator[pa.Table]:
        if self.checkpoint is not None:
            yield from DurableDriver(
                self.processor,
                self._source,
                self.checkpoint,
                sink=self.sink,
                notify=self._notify,
                stop_requested=self._stop.is_set,
                wait=self._stop.wait,
                poll_timeout=self._poll_timeout,
                idle_timeout=self._idle_timeout,
                max_records=self._max_records,
            )
            return
        processor = self.processor
        source = self._source
        limit = getattr(source, "max_unacked_batches", None)
        idle_since = processor.clock()
        while True:
            if self._stop.is_set():
                yield from self._emit(self._finish_on_stop())
                return
            if self._source_closed():
                return  # nothing more can be acknowledged: the buffered events are redelivered
            due = processor.due_in()
            timeout = self._poll_timeout if due is None else min(self._poll_timeout, due)
            started = time.monotonic()
            batch = source.read(max_records=self._max_records, timeout=timeout)
            if batch is None:
                yield from self._emit(processor.tick())
                if self._idle_timeout is not None and processor.clock() - idle_since >= self._idle_timeout:
                    yield from self._emit(processor.finish())
                    return
                waited = time.monotonic() - started
                if waited < timeout and processor.due_in() is None:
                    # a read that came back early with nothing must not turn into a busy loop
                    self._stop.wait(timeout - waited)
                continue
            idle_since = processor.clock()
            yield from self._emit(processor.feed(batch, lagging=lagging_of(source, processor)))
            if processor.mode == "streaming" and isinstance(limit, int) and len(processor.pending) >= limit:
                # the source lends no more batches until these are acknowledged: process them now
                yield from self._emit(processor.finish())
            yield from self._emit(processor.tick())

    def __aiter__(self) -> AsyncIterator[pa.Table]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[pa.Table]:
        processor = self.processor
        source = self._source
        if not isinstance(source, AsyncIterable):
            # sync sources: blocking reads run in a worker thread so the event loop stays free
            iterator = iter(self)
            sentinel = object()
            while True:
                table = await asyncio.to_thread(next, iterator, sentinel)
                if table is sentinel:
                    return
                yield table
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)
        done = object()

        async def produce() -> None:
            try:
                async for item in source:
                    await queue.put(item)
            finally:
                await queue.put(done)

        producer = asyncio.create_task(produce())
        try:
            while True:
                if self._stop.is_set():
                    for table in self._emit(self._finish_on_stop()):
                        yield table
                    return
                due = processor.due_in()
                wait = STOP_CHECK_S if due is None else min(due, STOP_CHECK_S)
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=wait)
                except asyncio.TimeoutError:
                    for table in self._emit(processor.tick()):
                        yield table
                    continue
                if item is done:
                    break
                for table in self._emit(processor.feed(item)):
                    yield table
                for table in self._emit(processor.tick()):
                    yield table
            for table in self._emit(processor.finish()):
                yield table
        finally:
            producer.cancel()
