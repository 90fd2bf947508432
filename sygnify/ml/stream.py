"""The four processing modes of :meth:`RealTimeML.stream`.

- ``streaming``: per event, with adaptive micro-batching: events are gathered until the
  batch reaches its target size or the oldest waited ``max_latency`` seconds; the target
  grows while predicting stays well inside the latency budget and shrinks when it does not.
- ``batch``: fixed ``batch_size`` batches (the last may be short).
- ``windowing``: rows grouped in event-time windows per key (``window=Tumbling(...)``,
  ``Sliding(...)`` or ``Session(...)``, ``time=``, ``key=``, ``allowed_lateness=``); every
  row of a window is scored when the window closes, with ``window_start``/``window_end``.
- ``aggregation``: features are aggregated per window and key with
  ``aggregate=Aggregate(by=KEY, name=(column, how), ...)`` (:class:`sygnify.processing.Aggregate`,
  the same vocabulary and numbers as ``LargeDataHandler``; ``by`` keys the windows, so
  ``key=`` is not needed) and the model scores one row per key and window. The old
  ``aggregations={"name": ("column", "mean"), ...}`` spelling (or Polars expressions) still
  works for this release, with a ``DeprecationWarning``.

Source batches are acknowledged only once all their rows' predictions were yielded and the
``on("prediction")`` callbacks ran (at-least-once). :meth:`PredictionStream.stop` (safe from
another thread or a signal handler) ends a stream within ``poll_timeout`` (default 0.25 s):
buffered events are scored, yielded and acknowledged first; ``source.close()`` ends it as fast, leaving
what was not acknowledged yet to be redelivered. ::

    >>> import pyarrow as pa
    >>> from sygnify.ml.realtime import RealTimeML
    >>> ml = RealTimeML()
    >>> _ = ml.register("inc", backend="callable", fn=lambda X: X[:, 0] + 1, features=["x"])
    >>> events = [{"x": float(i)} for i in range(5)]
    >>> [t.num_rows for t in ml.stream(events, model="inc", mode="batch", batch_size=2)]
    [2, 2, 1]

and one prediction per user and 10-second window, on features aggregated by an
:class:`~sygnify.processing.Aggregate`::

    >>> from sygnify.processing import Aggregate
    >>> from sygnify.streams.windows import Tumbling
    >>> _ = ml.register("spend", backend="callable", fn=lambda X: X[:, 0], features=["total"])
    >>> clicks = [{"user": "a", "t": 1.0, "amount": 5.0}, {"user": "a", "t": 4.0, "amount": 2.0},
    ...           {"user": "b", "t": 12.0, "amount": 1.0}]
    >>> stream = ml.stream(clicks, model="spend", mode="aggregation", window=Tumbling(10), time="t",
    ...                    aggregate=Aggregate(by="user", total=("amount", "sum")))
    >>> [(r["user"], r["window_start"], r["total"]) for t in stream for r in t.to_pylist()]
    [('a', 0.0, 7.0), ('b', 10.0, 1.0)]
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from sygnify.errors import ConfigurationError, SourceClosedError
from sygnify.ml.durable import DurableDriver, as_checkpoint, lagging_of, stream_sink
from sygnify.ml.stream_processor import MODES, Notify, Score, StreamProcessor
from sygnify.processing.sinks import Sink

# The mode logic lives in its own module; MODES is re-exported here, where it is documented.
__all__ = ["MODES", "PredictionStream"]

#: The default ``poll_timeout``, the longest one ``read()`` waits: how soon a stream sees ``stop()``.
STOP_CHECK_S = 0.25


class PredictionStream:
    """Predictions of a stream: iterate with ``for`` (sync) or ``async for`` (async sources too).

    Built by :meth:`RealTimeML.stream <sygnify.ml.realtime.RealTimeML.stream>`, which passes
    ``score`` (its model's scorer) and ``notify`` (its ``on()`` callbacks): each result is
    notified as ``"prediction"`` before it is yielded. ``idle_timeout`` ends a
    :class:`~sygnify.streams.StreamSource` stream after that many seconds without records
    (default: run until the consumer stops iterating); ``poll_timeout`` bounds each
    ``read()`` wait (default :data:`STOP_CHECK_S`: how soon :meth:`stop` is seen);
    ``max_records`` is the read size.

    In ``streaming`` mode the buffered events are scored as soon as they hold the source's
    ``max_unacked_batches`` batches, so backpressure never adds a second ``max_latency`` wait.

    ``sink=`` also writes every result table (a dataset directory, ``(connector, target)``
    or ``fn(table, label)``), before it is yielded. ``checkpoint=PATH`` makes the stream
    exactly-once towards that sink (see :mod:`sygnify.ml.durable`): windows, source
    progress and undelivered results are saved atomically, at least every
    ``checkpoint_interval`` seconds (default 1), and source batches are acknowledged at each
    save instead of waiting for their windows to close.
    """

    def __init__(
        self,
        source: Any,
        *,
        model: str,
        mode: str,
        score: Score,
        notify: Notify,
        clock: Callable[[], float],
        idle_timeout: float | None = None,
        poll_timeout: float = STOP_CHECK_S,
        max_records: int = 1000,
        sink: Any = None,
        checkpoint: Any = None,
        checkpoint_interval: float | None = None,
        **options: Any,
    ) -> None:
        self._notify = notify
        self._source = source
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._poll_timeout = poll_timeout
        self._max_records = max_records
        self.processor = StreamProcessor(score, model, mode, clock, notify=notify, **options)
        self._stop = threading.Event()
        self.sink: Sink | None = None if sink is None else stream_sink(sink)
        self._run_id = uuid.uuid4().hex[:12]
        self._written = 0
        self.checkpoint = None
        if checkpoint is not None:
            if not callable(getattr(source, "read", None)):
                raise ConfigurationError(
                    "checkpoint= needs a stream source (Kafka, Redis, NATS, MQTT or any object with "
                    "read()/close()); an iterable has no positions to resume from"
                )
            if mode == "batch":
                raise ConfigurationError(
                    "checkpoint= works with the streaming, windowing and aggregation modes; batch mode "
                    "holds rows between batches that the checkpoint does not keep"
                )
            self.checkpoint = as_checkpoint(checkpoint, checkpoint_interval)
        elif checkpoint_interval is not None:
            raise ConfigurationError("checkpoint_interval= needs checkpoint=")

    def stop(self) -> None:
        """End the stream soon (within ``poll_timeout`` plus one scoring), from any thread.

        Safe in a signal handler (``signal.signal(signal.SIGTERM, lambda *_: stream.stop())``).
        In ``streaming`` and ``batch`` modes the buffered events are scored, yielded and
        acknowledged before iteration ends; windows still open are not emitted (their source
        batches stay unacknowledged and are redelivered to the next run). The source is not
        closed: close it (``with source:``) once the loop ended.

        >>> import pyarrow as pa
        >>> from sygnify.ml.realtime import RealTimeML
        >>> ml = RealTimeML()
        >>> _ = ml.register("inc", backend="callable", fn=lambda X: X[:, 0] + 1, features=["x"])
        >>> stream = ml.stream(({"x": float(i)} for i in range(10)), model="inc", mode="batch", batch_size=2)
        >>> for table in stream:
        ...     stream.stop()
        >>> stream.stopped
        True
        """
        self._stop.set()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def _source_closed(self) -> bool:
        return bool(getattr(self._source, "closed", False))

    @property
    def late_rows(self) -> int:
        """Rows dropped because their window had already been emitted."""
        return self.processor.late_rows

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
                for ack in acks:  # only after the consumer took the predictions
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
        idle_since = self._clock()
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
                if self._idle_timeout is not None and self._clock() - idle_since >= self._idle_timeout:
                    yield from self._emit(processor.finish())
                    return
                waited = time.monotonic() - started
                if waited < timeout and processor.due_in() is None:
                    # a read that came back early with nothing must not turn into a busy loop
                    self._stop.wait(timeout - waited)
                continue
            idle_since = self._clock()
            yield from self._emit(processor.feed(batch, lagging=lagging_of(source, processor)))
            if processor.mode == "streaming" and isinstance(limit, int) and len(processor.pending) >= limit:
                # the source lends no more batches until these are acknowledged: score them now
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
