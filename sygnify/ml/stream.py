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

from collections.abc import Callable
from typing import Any

from sygnify.errors import ConfigurationError
from sygnify.processing.stream_processor import MODES, Notify, Score, StreamProcessor
from sygnify.processing.stream_run import STOP_CHECK_S, StreamRun, as_checkpoint, stream_sink

# The mode logic lives in processing; MODES is re-exported here, where it is documented.
__all__ = ["MODES", "STOP_CHECK_S", "PredictionStream"]


class PredictionStream(StreamRun):
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
    exactly-once towards that sink (see :mod:`sygnify.processing.stream_run`): windows, source
    progress and undelivered results are saved atomically, at least every
    ``checkpoint_interval`` seconds (default 1), and source batches are acknowledged at each
    save instead of waiting for their windows to close. The runtime is
    :class:`~sygnify.processing.stream_run.StreamRun`, which ``LargeDataHandler.process``
    also runs on stream sources, with a transform instead of a model.

    >>> import pyarrow as pa
    >>> from sygnify.ml.realtime import RealTimeML
    >>> ml = RealTimeML()
    >>> _ = ml.register("inc", backend="callable", fn=lambda X: X[:, 0] + 1, features=["x"])
    >>> stream = ml.stream(({"x": float(i)} for i in range(10)), model="inc", mode="batch", batch_size=2)
    >>> for table in stream:
    ...     stream.stop()   # safe from another thread or a signal handler too
    >>> stream.stopped
    True
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
        processor = StreamProcessor(score, model, mode, clock, notify=notify, **options)
        if checkpoint is None and checkpoint_interval is not None:
            raise ConfigurationError("checkpoint_interval= needs checkpoint=")
        super().__init__(
            processor,
            source,
            notify=notify,
            sink=None if sink is None else stream_sink(sink),
            checkpoint=None if checkpoint is None else as_checkpoint(checkpoint, checkpoint_interval),
            idle_timeout=idle_timeout,
            poll_timeout=poll_timeout,
            max_records=max_records,
        )
