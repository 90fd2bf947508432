"""A stream's mode logic, free of any I/O and of models: behind ``RealTimeML.stream`` (a model's
scorer as ``score``) and ``LargeDataHandler.process`` on a stream source (a transform).

A :class:`StreamProcessor` is fed source items and answers with ``(predictions, acks)``
pairs: it gathers rows into micro-batches (adaptive in ``streaming`` mode, fixed in
``batch`` mode) or event-time windows (``windowing``, ``aggregation``), calls ``score``,
and hands back a source item's ack only once every row of it was scored. The sync and async
drivers in :mod:`sygnify.ml.stream` decide when to feed, tick and finish; time comes
from the injected clock, so nothing here waits. ``score`` is any ``(features, keys) ->
answers`` callable (:meth:`RealTimeML.score <sygnify.ml.realtime.RealTimeML.score>` bound
to one model, in a real stream):

    >>> import pyarrow as pa
    >>> def score(features, keys):
    ...     return pa.table({"prediction": pa.compute.add(features.column("x"), 1.0)})
    >>> now = [0.0]
    >>> processor = StreamProcessor(score, "inc", "streaming", lambda: now[0], max_latency=0.5)
    >>> processor.feed({"x": 1.0}), processor.due_in()
    ([], 0.5)
    >>> now[0] = 0.5  # the oldest event has waited max_latency: score what is buffered
    >>> [(table.column("prediction").to_pylist(), acks) for table, acks in processor.tick()]
    [([2.0], [])]
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter, deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeAlias, get_args

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from sygnify.errors import ConfigurationError, DataQualityError, ModelError, SchemaError
from sygnify.io.arrow import to_arrow_table
from sygnify.processing.aggregate import Aggregate, AggregateHow
from sygnify.streams.windows import (
    TAG_COLUMN,
    ClosedWindow,
    Count,
    Session,
    Sliding,
    Tumbling,
    WindowSpec,
    WindowState,
)

__all__ = [
    "MODES",
    "Item",
    "Notify",
    "NullFeatures",
    "OnLate",
    "Score",
    "StreamEvent",
    "StreamProcessor",
    "normalize",
]

MODES = ("streaming", "batch", "windowing", "aggregation")

#: Scores a features table for one model; ``keys`` (one per row, or None) route A/B splits.
Score: TypeAlias = Callable[[pa.Table, Sequence[Hashable] | None], pa.Table]
#: What a stream tells its owner: each result table, or rows dropped as late.
StreamEvent: TypeAlias = Literal["prediction", "late"]
#: Receives a stream's notifications (:meth:`RealTimeML.notify` in a real stream).
Notify: TypeAlias = Callable[[StreamEvent, Any], None]

# The deprecated ``aggregations=`` spelling also took these, which have no mergeable partial.
_LEGACY_ONLY = {"median", "first", "last"}
_WINDOW = "__sygnify_window"
_ROW = "__sygnify_row"  # a row's index in its source item, to dead-letter it
#: Errors that one bad record can cause; anything else (a transient failure) is not the record's.
_RECORD_ERRORS = (ModelError, SchemaError, DataQualityError)
_logger = logging.getLogger(__name__)


#: Sends rows of a source item (by index) to its dead-letter target with their reasons.
Reject: TypeAlias = Callable[[Sequence[int], Sequence[str]], None]
#: What to do with a row whose window was already emitted.
OnLate: TypeAlias = Literal["drop", "dead_letter"]
#: What to do with a row whose numeric features are null: dead-letter it (a model would see
#: NaN) or keep it (a transform, in ``LargeDataHandler.process`` on a stream source).
NullFeatures: TypeAlias = Literal["dead_letter", "keep"]


@dataclass
class Item:
    """A stream item made uniform: its rows, and what the source lent with them (all optional).

    ``ack`` acknowledges it, ``reject(rows, reasons)`` dead-letters rows of it, ``retain()``
    tells the source it is held for long (an open window) so it stops counting toward
    backpressure. ``positions()`` gives each row's (partition, position) (or None), which
    windows use to follow the slowest partition.
    """

    table: pa.Table
    ack: Callable[[], None] | None = None
    reject: Reject | None = None
    retain: Callable[[], None] | None = None
    positions: Callable[[], Sequence[tuple[str, Any]] | None] | None = None


def normalize(item: Any) -> Item:
    """A stream item as an :class:`Item`: SourceBatch, Arrow, Polars, pandas, dict(s)."""
    if isinstance(item, Item):
        return item
    batch = getattr(item, "batch", None)
    if isinstance(batch, pa.RecordBatch) and callable(getattr(item, "ack", None)):
        reject = getattr(item, "reject", None)
        retain = getattr(item, "retain", None)
        positions = getattr(item, "row_positions", None)
        return Item(
            pa.Table.from_batches([batch]),
            item.ack,
            reject if callable(reject) else None,
            retain if callable(retain) else None,
            positions if callable(positions) else None,
        )
    if isinstance(item, Mapping):
        values = list(item.values())
        if values and all(isinstance(v, list | tuple) for v in values):
            return Item(pa.table(dict(item)))
        return Item(pa.Table.from_pylist([dict(item)]))
    if isinstance(item, list):
        return Item(pa.Table.from_pylist(item))
    return Item(to_arrow_table(item))


@dataclass
class _Pending:
    """A source item whose rows are not all emitted yet."""

    tag: int
    ack: Callable[[], None] | None
    remaining: int  # rows (or window memberships) still to be emitted
    reject: Reject | None = None


class StreamProcessor:
    """Mode logic shared by the sync and async drivers; pure apart from calling ``score``.

    ``notify("late", {"model": model, "rows": n, "records": table})`` reports rows dropped as
    late (``on_late="dead_letter"`` also sends them to the source's dead-letter target).
    ``close_after`` closes windows idle that long on the clock (see
    :class:`~sygnify.streams.windows.WindowState`).
    """

    def __init__(
        self,
        score: Score,
        model: str,
        mode: str,
        clock: Callable[[], float],
        *,
        notify: Notify | None = None,
        **options: Any,
    ) -> None:
        if mode not in MODES:
            raise ConfigurationError(f"unknown stream mode {mode!r}; use one of {', '.join(MODES)}")
        self.score, self.model, self.mode, self.clock = score, model, mode, clock
        self.notify = notify
        self.include_input = bool(options.pop("include_input", True))
        self.batch_size = int(options.pop("batch_size", 1000))
        self.max_batch_size = int(options.pop("max_batch_size", 4096))
        self.max_latency = float(options.pop("max_latency", 0.05))
        key = options.pop("key", None)
        self.key_columns: list[str] = [key] if isinstance(key, str) else list(key or [])
        self.time_column: str | None = options.pop("time", None)
        window: WindowSpec | None = options.pop("window", None)
        lateness = options.pop("allowed_lateness", 0.0)
        aggregate = options.pop("aggregate", None)
        aggregations = options.pop("aggregations", None)
        close_after = options.pop("close_after", None)
        # a model cannot score a missing feature (it would see NaN); a transform takes nulls as data
        self.null_features: NullFeatures = options.pop("null_features", "dead_letter")
        if self.null_features not in ("dead_letter", "keep"):
            raise ConfigurationError(
                f"null_features must be 'dead_letter' or 'keep', got {self.null_features!r}"
            )
        self.on_late: OnLate = options.pop("on_late", "drop")
        if self.on_late not in ("drop", "dead_letter"):
            raise ConfigurationError(f"on_late must be 'drop' or 'dead_letter', got {self.on_late!r}")
        if options:
            raise ConfigurationError(f"stream() does not take option(s) {', '.join(sorted(options))}")
        if self.batch_size < 1 or self.max_batch_size < 1 or self.max_latency < 0:
            raise ConfigurationError("batch sizes must be >= 1 and max_latency >= 0")
        self.window_state: WindowState | None = None
        self.aggregate: Aggregate | None = None
        self.legacy_exprs: list[pl.Expr] = []  # the deprecated aggregations= spelling only
        self.legacy_float = False
        self._window_aggregate: Aggregate | None = None  # the aggregate per (window, *keys)
        if mode == "aggregation":
            self._configure_aggregation(aggregate, aggregations)
        elif aggregate is not None or aggregations is not None:
            raise ConfigurationError(f"aggregate= applies to mode='aggregation' only, not {mode!r}")
        if mode in ("windowing", "aggregation"):
            timed = isinstance(window, Tumbling | Sliding | Session)
            if not (timed and self.time_column) and not isinstance(window, Count):
                raise ConfigurationError(
                    f"mode {mode!r} needs window=Tumbling/Sliding/Session(...) and time=COLUMN, "
                    "or window=Count(n)"
                )
            if isinstance(lateness, timedelta):
                lateness = lateness.total_seconds()
            assert window is not None
            self.window_state = WindowState(
                window,
                time_column=self.time_column,
                key_columns=self.key_columns,
                allowed_lateness=lateness,
                close_after=close_after,
            )
        elif close_after is not None:
            raise ConfigurationError("close_after= applies to the windowing and aggregation modes")
        self.target = min(32, self.max_batch_size)  # adaptive micro-batch size (streaming mode)
        self.buffer: list[pa.Table] = []
        self.arrivals: list[float] = []  # when each buffered table arrived (its latency clock)
        self.buffered_rows = 0
        self.first_at: float | None = None
        self.pending: deque[_Pending] = deque()
        self.by_tag: dict[int, _Pending] = {}
        self.next_tag = 0
        self.late_rows = 0

    # -- feeding --------------------------------------------------------------------------------
    def feed(
        self, item: Any, *, lagging: Sequence[str] | None = None
    ) -> list[tuple[pa.Table, list[Callable[[], None]]]]:
        """Take one source item; ``lagging``: the source's partitions still behind (windows'
        watermark follows the slowest, see :attr:`WindowState.watermark`)."""
        normalized = normalize(item)
        table, ack, reject = normalized.table, normalized.ack, normalized.reject
        tag = self.next_tag
        self.next_tag += 1
        entry = _Pending(tag, ack, 0, reject)
        self.pending.append(entry)
        self.by_tag[tag] = entry
        if self.window_state is not None:
            return self._feed_windows(normalized, entry, lagging)
        entry.remaining = table.num_rows
        if table.num_rows == 0:
            return [(pa.table({}), self._releasable())] if self._releasable() else []
        table = table.append_column(TAG_COLUMN, pa.array(np.full(table.num_rows, tag, np.int64)))
        table = table.append_column(_ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
        now = self.clock()
        if self.first_at is None:
            self.first_at = now
        self.buffer.append(table)
        self.arrivals.append(now)
        self.buffered_rows += table.num_rows
        out = []
        size = self.batch_size if self.mode == "batch" else self.target
        while self.buffered_rows >= size:
            out.append(self._score_rows(self._take(size)))
            size = self.batch_size if self.mode == "batch" else self.target
        return out

    def _feed_windows(
        self, item: Item, entry: _Pending, lagging: Sequence[str] | None
    ) -> list[tuple[pa.Table, list[Callable[[], None]]]]:
        assert self.window_state is not None
        table = item.table
        tagged = table.append_column(TAG_COLUMN, pa.array(np.full(table.num_rows, entry.tag, np.int64)))
        tagged = tagged.append_column(_ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
        if self.mode == "windowing" and table.num_rows:
            # a row whose features are missing would be scored as NaN when its window closes:
            # send it to the dead letters now, while its batch can still take it
            exclude = [*self.key_columns, *([self.time_column] if self.time_column else [])]
            bad: list[tuple[int, int, str]] = []
            tagged, bad = self._without_null_features(tagged, self._features(tagged, exclude))
            if bad:
                self._dead_letter(bad)
        partitions = self._partitions(item, tagged) if lagging is not None else None
        result = self.window_state.add(tagged, now=self.clock(), partitions=partitions, lagging=lagging)
        entry.remaining = sum(result.assigned.values())
        if result.late:
            self._late(tagged, result.late_rows, entry)
        if entry.remaining > 0 and item.retain is not None:
            item.retain()  # held by open windows: the source must not wait for its ack
        out = self._score_windows(result.closed)
        if result.current:
            out = self._score_windows(result.current, current=True) + out
        return out

    @staticmethod
    def _partitions(item: Item, tagged: pa.Table) -> list[str] | None:
        """Each row's source partition, when the source has more than one (else None)."""
        positions = item.positions() if item.positions is not None else None
        if not positions:
            return None
        names = [partition for partition, _ in positions]
        if tagged.num_rows == len(names):  # no row was dropped: row i is the item's row i
            return names
        return [names[row] for row in tagged.column(_ROW).to_pylist()]

    def _late(self, tagged: pa.Table, indices: list[int], entry: _Pending) -> None:
        self.late_rows += len(indices)
        records = tagged.take(pa.array(indices, pa.int64()))
        source_rows = records.column(_ROW).to_pylist()
        records = records.drop_columns([TAG_COLUMN, _ROW])
        if self.notify is not None:
            self.notify("late", {"model": self.model, "rows": len(indices), "records": records})
        if self.on_late == "dead_letter":
            reason = "late: its window was already emitted"
            self._dead_letter([(entry.tag, row, reason) for row in source_rows])

    def due_in(self) -> float | None:
        """Seconds until something must be done without new events: buffered events to score
        (streaming mode) or idle windows to close (``close_after``); None if nothing waits."""
        if self.window_state is not None:
            return self.window_state.idle_due_in(self.clock())
        if self.mode != "streaming" or self.first_at is None or not self.buffered_rows:
            return None
        return max(0.0, self.first_at + self.max_latency - self.clock())

    def tick(self) -> list[tuple[pa.Table, list[Callable[[], None]]]]:
        """Score the buffer if its oldest event has waited ``max_latency``; close idle windows."""
        if self.window_state is not None:
            return self._score_windows(self.window_state.close_idle(self.clock()))
        due = self.due_in()
        if due is not None and due <= 0:
            return [self._score_rows(self._take(self.buffered_rows))]
        return []

    def finish(self) -> list[tuple[pa.Table, list[Callable[[], None]]]]:
        if self.window_state is not None:
            return self._score_windows(self.window_state.flush())
        out = []
        while self.buffered_rows:
            size = self.batch_size if self.mode == "batch" else self.buffered_rows
            out.append(self._score_rows(self._take(min(size, self.buffered_rows))))
        return out

    def _take(self, rows: int) -> pa.Table:
        parts, taken = [], 0
        while taken < rows:
            head = self.buffer[0]
            need = rows - taken
            if head.num_rows <= need:
                parts.append(self.buffer.pop(0))
                self.arrivals.pop(0)
                taken += head.num_rows
            else:
                parts.append(head.slice(0, need))
                self.buffer[0] = head.slice(need)
                taken += need
        self.buffered_rows -= rows
        # The rows left keep their arrival time: they wait at most max_latency in all.
        self.first_at = self.arrivals[0] if self.buffered_rows else None
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    # -- scoring --------------------------------------------------------------------------------
    def _features(self, table: pa.Table, exclude: Sequence[str]) -> pa.Table:
        drop = [c for c in (*exclude, TAG_COLUMN, _ROW) if c in table.column_names]
        return table.drop_columns(drop) if drop else table

    def _done(self, tags: Counter[int]) -> list[Callable[[], None]]:
        for tag, count in tags.items():
            entry = self.by_tag.get(tag)
            if entry is not None:  # None: rows restored from durable state, acknowledged then
                entry.remaining -= count
        return self._releasable()

    def _releasable(self) -> list[Callable[[], None]]:
        acks = []
        while self.pending and self.pending[0].remaining <= 0:
            done = self.pending.popleft()
            del self.by_tag[done.tag]
            if done.ack is not None:
                acks.append(done.ack)
        return acks

    def _score_rows(self, table: pa.Table) -> tuple[pa.Table, list[Callable[[], None]]]:
        exclude = [*self.key_columns, *([self.time_column] if self.time_column else [])]
        counts = pc.value_counts(table.column(TAG_COLUMN))
        tags = Counter(
            dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
        )
        start = time.perf_counter()
        table, bad = self._without_null_features(table, self._features(table, exclude))
        result, table = self._score_isolating(table, exclude, bad)
        elapsed = time.perf_counter() - start
        if self.mode == "streaming":
            self._adapt(elapsed, table.num_rows)
        if bad:
            self._dead_letter(bad)
        result = self._with_input(result, table)
        return result, self._done(tags)

    def _without_null_features(
        self, table: pa.Table, features: pa.Table
    ) -> tuple[pa.Table, list[tuple[int, int, str]]]:
        """Drop rows whose numeric features are null (a missing field): NaN must not be scored."""
        bad: list[tuple[int, int, str]] = []
        if self.null_features == "keep":
            return table, bad
        mask = None
        for name in features.column_names:
            column = features.column(name)
            kind = column.type
            numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            if not column.null_count or not (numeric or pa.types.is_null(kind)):
                continue
            nulls = pc.is_null(column)
            for index in pc.indices_nonzero(
                pc.and_not(nulls, mask) if mask is not None else nulls
            ).to_pylist():
                bad.append((*self._origin(table, index), f"feature {name!r} is missing or null"))
            mask = nulls if mask is None else pc.or_(mask, nulls)
        if mask is None:
            return table, bad
        return table.filter(pc.invert(mask)), bad

    @staticmethod
    def _origin(table: pa.Table, index: int) -> tuple[int, int]:
        return table.column(TAG_COLUMN)[index].as_py(), table.column(_ROW)[index].as_py()

    def _score_isolating(
        self,
        table: pa.Table,
        exclude: Sequence[str],
        bad: list[tuple[int, int, str]],
        *,
        window_key: tuple[Any, ...] | None = None,
    ) -> tuple[pa.Table, pa.Table]:
        """Score ``table``; on an error one record can cause, bisect to find and drop those records.

        Returns the answers and the rows they belong to (``table`` less the bad rows, which are
        appended to ``bad``). A good batch costs one model call; each bad record about 2·log2(n).
        """
        if not table.num_rows:
            return pa.table({}), table
        if window_key is not None:  # a window's rows are routed by the window's key
            keys: list[Any] | None = [window_key] * table.num_rows
        else:
            keys = table.column(self.key_columns[0]).to_pylist() if self.key_columns else None
        try:
            return self.score(self._features(table, exclude), keys), table
        except _RECORD_ERRORS as exc:
            if table.num_rows <= 1:
                if table.num_rows:
                    bad.append((*self._origin(table, 0), f"{type(exc).__name__}: {exc}"))
                return pa.table({}), table.slice(0, 0)
        half = table.num_rows // 2
        left, left_rows = self._score_isolating(table.slice(0, half), exclude, bad, window_key=window_key)
        right, right_rows = self._score_isolating(table.slice(half), exclude, bad, window_key=window_key)
        parts = [
            (answers, rows) for answers, rows in ((left, left_rows), (right, right_rows)) if rows.num_rows
        ]
        if not parts:
            return left, left_rows
        answers = pa.concat_tables([a for a, _ in parts], promote_options="permissive")
        return answers, pa.concat_tables([r for _, r in parts])

    def _dead_letter(self, bad: list[tuple[int, int, str]]) -> None:
        """Send each bad row to its source item's dead-letter target (logged when it has none)."""
        by_tag: dict[int, list[tuple[int, str]]] = {}
        for tag, row, reason in bad:
            by_tag.setdefault(tag, []).append((row, reason))
        for tag, rows in by_tag.items():
            entry = self.by_tag.get(tag)
            reject = entry.reject if entry is not None else None
            if reject is not None:
                reject([row for row, _ in rows], [reason for _, reason in rows])
            else:
                for row, reason in rows:
                    _logger.warning("model %s: row %d dropped: %s", self.model, row, reason)

    def _adapt(self, elapsed: float, rows: int) -> None:
        # keep scoring time around half the latency budget: double while well under, halve when over
        if rows >= self.target and elapsed < self.max_latency / 4:
            self.target = min(self.max_batch_size, self.target * 2)
        elif elapsed > self.max_latency / 2 and self.target > 1:
            self.target = max(1, self.target // 2)

    def _with_input(self, result: pa.Table, table: pa.Table) -> pa.Table:
        if not self.include_input:
            keep = [c for c in self.key_columns if c in table.column_names]
        else:
            keep = [c for c in table.column_names if c not in (TAG_COLUMN, _ROW)]
        for index, name in enumerate(keep):
            result = result.add_column(index, name, table.column(name))
        return result

    def _bounds(self, windows: list[ClosedWindow], lengths: list[int]) -> tuple[pa.Array, pa.Array]:
        starts = [w.start for w, n in zip(windows, lengths) for _ in range(n)]
        ends = [w.end for w, n in zip(windows, lengths) for _ in range(n)]
        start_arr, end_arr = pa.array(starts, pa.float64()), pa.array(ends, pa.float64())
        sample = windows[0].rows
        timed = self.time_column is not None and self.time_column in sample.column_names
        if timed and pa.types.is_timestamp(sample.schema.field(self.time_column).type):
            start_arr = (
                pa.array([s * 1e6 for s in starts], pa.float64()).cast(pa.int64()).cast(pa.timestamp("us"))
            )
            end_arr = (
                pa.array([e * 1e6 for e in ends], pa.float64()).cast(pa.int64()).cast(pa.timestamp("us"))
            )
        return start_arr, end_arr

    def _score_windows(
        self, windows: list[ClosedWindow], *, current: bool = False
    ) -> list[tuple[pa.Table, list[Callable[[], None]]]]:
        if not windows:
            return [(pa.table({}), acks)] if (acks := self._releasable()) else []
        if current:  # running results: no row leaves its window, nothing is released
            return [(self._running(windows), [])]
        return [(self._marked(self._results(windows), final=True), self._done(_tag_counts(windows)))]

    def _marked(self, table: pa.Table, *, final: bool) -> pa.Table:
        """With ``emit="current"`` windows, say which results are final (the window closed)."""
        if self.window_state is None or self.window_state.emit != "current" or not table.num_columns:
            return table
        return table.append_column("final", pa.array([final] * table.num_rows, pa.bool_()))

    def _running(self, windows: list[ClosedWindow]) -> pa.Table:
        return self._marked(self._results(windows), final=False)

    def _results(self, windows: list[ClosedWindow]) -> pa.Table:
        if self.mode == "aggregation":
            table = self._aggregate(windows)
            features = table.drop_columns([*self.key_columns, "window_start", "window_end"])
            keys = [w.key for w in windows] if self.key_columns else None
            result = self.score(features, keys)
            passthrough = (
                table
                if self.include_input
                else table.select([*self.key_columns, "window_start", "window_end"])
            )
        else:
            # one model call per window: window-level models (sequence, set) see exactly one window
            parts = [self._score_window_rows(window) for window in windows]
            parts = [part for part in parts if part.num_columns]
            return pa.concat_tables(parts, promote_options="permissive") if parts else pa.table({})
        for index, name in enumerate(passthrough.column_names):
            result = result.add_column(index, name, passthrough.column(name))
        return result

    def _score_window_rows(self, window: ClosedWindow) -> pa.Table:
        exclude = [*self.key_columns, self.time_column or ""]
        bad: list[tuple[int, int, str]] = []
        window_key = window.key if self.key_columns else None
        result, rows = self._score_isolating(window.rows, exclude, bad, window_key=window_key)
        if bad:
            self._dead_letter(bad)
        if not rows.num_rows:
            return pa.table({})
        starts, ends = self._bounds([window], [rows.num_rows])
        internal = [c for c in (TAG_COLUMN, _ROW) if c in rows.column_names]
        base = rows.drop_columns(internal) if self.include_input else rows.select(self.key_columns)
        passthrough = base.append_column("window_start", starts).append_column("window_end", ends)
        for index, name in enumerate(passthrough.column_names):
            result = result.add_column(index, name, passthrough.column(name))
        return result

    # -- aggregation mode -------------------------------------------------------------------
    def _configure_aggregation(self, aggregate: Any, aggregations: Any) -> None:
        if aggregate is not None and aggregations is not None:
            raise ConfigurationError("give aggregate=Aggregate(...) or the old aggregations=..., not both")
        if aggregations is not None:
            aggregate = self._from_legacy(aggregations)
            if aggregate is None:
                return
        if not isinstance(aggregate, Aggregate):
            raise ConfigurationError(
                "mode 'aggregation' needs aggregate=Aggregate(...) (sygnify.processing.Aggregate), "
                f"e.g. Aggregate(by='user', total=('amount', 'sum')); got {aggregate!r}"
            )
        by = list(aggregate.by)
        if by and self.key_columns and by != self.key_columns:
            raise ConfigurationError(
                f"key={self.key_columns!r} and Aggregate(by={by!r}) disagree: the windows are "
                "per aggregation group, so give the keys once (Aggregate(by=...) is enough)"
            )
        self.key_columns = self.key_columns or by
        self.aggregate = aggregate

    def _from_legacy(self, aggregations: Any) -> Aggregate | None:
        """The old ``aggregations={"name": ("column", "how")}`` as an :class:`Aggregate`.

        Specs an ``Aggregate`` cannot express (Polars expressions, median/first/last) keep
        the old per-window Polars path for this release. ``(column, how)`` outputs stay
        Float64 either way, as they were.
        """
        warnings.warn(
            "ml.stream(mode='aggregation', aggregations={...}) is deprecated and goes in the next "
            "release: pass aggregate=sygnify.processing.Aggregate(by=KEY, name=(column, how), ...), "
            "the aggregation vocabulary LargeDataHandler uses",
            DeprecationWarning,
            stacklevel=6,  # the caller of RealTimeML.stream
        )
        if not aggregations:
            raise ConfigurationError(
                "mode 'aggregation' needs aggregate=Aggregate(by=..., name=(column, how))"
            )
        specs = dict(aggregations) if isinstance(aggregations, Mapping) else None
        if specs is None or any(isinstance(spec, pl.Expr) for spec in specs.values()):
            self.legacy_exprs = _legacy_exprs(aggregations)
            return None
        hows = (*get_args(AggregateHow), *_LEGACY_ONLY)
        for name, spec in specs.items():
            if not (isinstance(spec, tuple) and len(spec) == 2 and spec[1] in hows):
                raise ConfigurationError(
                    f"aggregation {name}={spec!r} must be (column, how) with how one of {', '.join(hows)}",
                    resource=name,
                )
        if any(how in _LEGACY_ONLY for _, how in specs.values()):
            self.legacy_exprs = _legacy_exprs(specs)
            return None
        self.legacy_float = True
        return Aggregate(**specs)

    def _aggregate(self, windows: list[ClosedWindow]) -> pa.Table:
        """One row per closed window, in the order they closed: keys, bounds, aggregates."""
        merged = _merged_rows(windows)
        if merged is not None and self.aggregate is not None:
            fast = _window_aggregates(
                merged, [w.rows.num_rows for w in windows], self.key_columns, self.aggregate
            )
            if fast is not None:
                keys, values = fast
                if self.legacy_float:
                    values = [pc.cast(v, pa.float64()) for v in values]
                starts = pa.array([w.start for w in windows], pa.float64())
                ends = pa.array([w.end for w in windows], pa.float64())
                names = [*self.key_columns, "window_start", "window_end", *self.aggregate.aggs]
                return pa.Table.from_arrays([*keys, starts, ends, *values], names=names)
        rows = self._window_frame(windows, merged)
        # A window holds one key, so grouping by (window, *keys) gives one row per window.
        groups = [_WINDOW, *self.key_columns]
        if self.aggregate is not None:
            if self._window_aggregate is None:
                self._window_aggregate = Aggregate(
                    groups, hll_precision=self.aggregate.hll_precision, **self.aggregate.aggs
                )
            spec = self._window_aggregate
            table = spec.finalize(spec.partial(rows))  # sorted by the window index first
        else:
            table = rows.group_by(groups, maintain_order=True).agg(self.legacy_exprs)
        values_frame = table.drop(groups)
        if self.legacy_float:
            values_frame = values_frame.cast(pl.Float64)
        bounds = pl.DataFrame(
            {"window_start": [w.start for w in windows], "window_end": [w.end for w in windows]},
            schema={"window_start": pl.Float64, "window_end": pl.Float64},
        )
        return pl.concat([table.select(self.key_columns), bounds, values_frame], how="horizontal").to_arrow()

    @staticmethod
    def _window_frame(windows: list[ClosedWindow], merged: pa.Table | None) -> pl.DataFrame:
        """The windows' rows as one frame, with each row's window index (in ``windows``)."""
        if merged is None:
            # windows restored from durable state may differ in types: Polars relaxes them
            frames = []
            for index, window in enumerate(windows):
                frame = pl.from_arrow(window.rows.drop_columns([TAG_COLUMN, _ROW]))
                assert isinstance(frame, pl.DataFrame)
                frames.append(frame.with_columns(pl.lit(index, pl.UInt32).alias(_WINDOW)))
            return pl.concat(frames, how="vertical_relaxed")
        lengths = [window.rows.num_rows for window in windows]
        window_of = np.repeat(np.arange(len(windows), dtype=np.uint32), lengths)
        frame = pl.from_arrow(merged.append_column(_WINDOW, pa.array(window_of, pa.uint32())))
        assert isinstance(frame, pl.DataFrame)
        return frame


def _merged_rows(windows: list[ClosedWindow]) -> pa.Table | None:
    """The windows' rows back to back, less the internal columns (None: their schemas differ)."""
    tables = [window.rows.drop_columns([TAG_COLUMN, _ROW]) for window in windows]
    schema = tables[0].schema
    if any(not table.schema.equals(schema) for table in tables[1:]):
        return None
    return pa.concat_tables(tables)


# What the numpy path of window aggregates takes: the value types whose sum, min and max it
# computes exactly as Polars does (Polars widens small integers' sums; float32 sums differ), and
# the key types that come out of Polars unchanged (strings become large strings).
_FAST_VALUES = (pa.int32(), pa.int64(), pa.uint32(), pa.uint64(), pa.float64())
_FAST_KEYS = (
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint16(),
    pa.uint32(),
    pa.uint64(),
    pa.bool_(),
    pa.string(),
    pa.large_string(),
)


def _window_aggregates(
    rows: pa.Table, lengths: list[int], key_columns: list[str], aggregate: Aggregate
) -> tuple[list[pa.Array], list[pa.Array]] | None:
    """Each window's key values and aggregates, in numpy: ``rows`` holds the windows back to back.

    A window holds one key and its rows are contiguous, so each aggregate is a segment
    reduction. Covers sum, count, len, min, max and mean of null-free, NaN-free int32/int64/
    uint32/uint64/float64 columns (the common case); anything else returns None and goes
    through :class:`~sygnify.processing.Aggregate` in Polars. The values are Polars' own
    (types included, -0.0 sums as 0.0), float sums up to rounding: both add in their own
    order, and Polars' streaming group-by is not reproducible to the last bit either (two
    runs on the same rows can differ in the last place).
    """
    if any(how not in ("sum", "count", "len", "min", "max", "mean") for _, how in aggregate.aggs.values()):
        return None
    if any(rows.schema.field(key).type not in _FAST_KEYS for key in key_columns):
        return None
    index_type = pa.uint32() if pl.get_index_type() == pl.UInt32 else pa.uint64()
    counts = np.asarray(lengths, dtype=np.int64)
    if not counts.all():
        return None  # reduceat reads an empty segment as the next row
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for column, how in aggregate.aggs.values():
        if column not in rows.column_names:
            return None
        if how == "len" or column in arrays:
            continue
        data = rows.column(column)
        if data.type not in _FAST_VALUES or data.null_count:
            return None
        values = data.to_numpy()
        if pa.types.is_floating(data.type):
            extreme = any(c == column and h in ("min", "max") for c, h in aggregate.aggs.values())
            if np.isnan(values).any() or (extreme and (values == 0).any()):
                return None  # NaN, and the sign of a zero minimum/maximum: Polars' own rules
        arrays[column] = values
    out: list[pa.Array] = []
    for column, how in aggregate.aggs.values():
        if how in ("count", "len"):
            out.append(pa.array(counts, index_type))
            continue
        values = arrays[column]
        dtype = rows.schema.field(column).type
        if how == "mean":
            sums = np.add.reduceat(values.astype(np.float64), starts) + 0.0  # Polars sums -0.0 as 0.0
            out.append(pa.array(sums / counts, pa.float64()))
        elif how == "sum":
            sums = np.add.reduceat(values, starts)
            out.append(pa.array(sums + 0.0 if sums.dtype.kind == "f" else sums, dtype))
        else:
            reduce = np.minimum if how == "min" else np.maximum
            out.append(pa.array(reduce.reduceat(values, starts), dtype))
    first = pa.array(starts, pa.int64())
    keys = []
    for key in key_columns:
        column = rows.column(key).take(first).combine_chunks()
        keys.append(column.cast(pa.large_string()) if pa.types.is_string(column.type) else column)
    return keys, out


def _tag_counts(windows: list[ClosedWindow]) -> Counter[int]:
    """How many rows of each source item (by tag) the windows hold."""
    tags = [window.rows.column(TAG_COLUMN).to_numpy() for window in windows]
    values, counts = np.unique(np.concatenate(tags), return_counts=True)
    return Counter(dict(zip(values.tolist(), counts.tolist(), strict=True)))


def _legacy_exprs(aggregations: Any) -> list[pl.Expr]:
    """Polars expressions of the deprecated ``aggregations=`` spelling (goes next release)."""
    if not isinstance(aggregations, Mapping):
        return list(aggregations)
    exprs = []
    for name, spec in aggregations.items():
        if isinstance(spec, pl.Expr):
            exprs.append(spec.alias(name))
        else:
            column, how = spec
            exprs.append(getattr(pl.col(column), how)().cast(pl.Float64).alias(name))
    return exprs
