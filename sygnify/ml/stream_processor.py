"""The mode logic behind :class:`~sygnify.ml.stream.PredictionStream`, free of any I/O.

A :class:`StreamProcessor` is fed source items and answers with ``(predictions, acks)``
pairs: it gathers rows into micro-batches (adaptive in ``streaming`` mode, fixed in
``batch`` mode) or event-time windows (``windowing``, ``aggregation``), calls the model,
and hands back a source item's ack only once every row of it was scored. The sync and async
drivers in :mod:`sygnify.ml.stream` decide when to feed, tick and finish; time comes
from the injected clock, so nothing here waits:

    >>> from sygnify.ml.realtime import RealTimeML
    >>> ml = RealTimeML()
    >>> _ = ml.register("inc", backend="callable", fn=lambda X: X[:, 0] + 1, features=["x"])
    >>> now = [0.0]
    >>> processor = StreamProcessor(ml, "inc", "streaming", lambda: now[0], max_latency=0.5)
    >>> processor.feed({"x": 1.0}), processor.due_in()
    ([], 0.5)
    >>> now[0] = 0.5  # the oldest event has waited max_latency: score what is buffered
    >>> [(table.column("prediction").to_pylist(), acks) for table, acks in processor.tick()]
    [([2.0], [])]
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from sygnify.errors import ConfigurationError
from sygnify.io.arrow import to_arrow_table
from sygnify.streams.windows import (
    TAG_COLUMN,
    ClosedWindow,
    Session,
    Sliding,
    Tumbling,
    WindowSpec,
    WindowState,
)

if TYPE_CHECKING:
    from sygnify.ml.realtime import RealTimeML

__all__ = ["MODES", "StreamProcessor"]

MODES = ("streaming", "batch", "windowing", "aggregation")
_AGGREGATES = {"mean", "sum", "min", "max", "count", "std", "var", "median", "first", "last", "n_unique"}


def _normalize(item: Any) -> tuple[pa.Table, Callable[[], None] | None]:
    """A stream item as (table, ack): SourceBatch, Arrow, Polars, pandas, dict(s)."""
    batch = getattr(item, "batch", None)
    if isinstance(batch, pa.RecordBatch) and callable(getattr(item, "ack", None)):
        return pa.Table.from_batches([batch]), item.ack
    if isinstance(item, Mapping):
        values = list(item.values())
        if values and all(isinstance(v, list | tuple) for v in values):
            return pa.table(dict(item)), None
        return pa.Table.from_pylist([dict(item)]), None
    if isinstance(item, list):
        return pa.Table.from_pylist(item), None
    return to_arrow_table(item), None


@dataclass
class _Pending:
    """A source item whose rows are not all emitted yet."""

    tag: int
    ack: Callable[[], None] | None
    remaining: int  # rows (or window memberships) still to be emitted


class StreamProcessor:
    """Mode logic shared by the sync and async drivers; pure apart from calling the model."""

    def __init__(
        self, ml: RealTimeML, model: str, mode: str, clock: Callable[[], float], **options: Any
    ) -> None:
        if mode not in MODES:
            raise ConfigurationError(f"unknown stream mode {mode!r}; use one of {', '.join(MODES)}")
        self.ml, self.model, self.mode, self.clock = ml, model, mode, clock
        self.include_input = bool(options.pop("include_input", True))
        self.batch_size = int(options.pop("batch_size", 1000))
        self.max_batch_size = int(options.pop("max_batch_size", 4096))
        self.max_latency = float(options.pop("max_latency", 0.05))
        key = options.pop("key", None)
        self.key_columns: list[str] = [key] if isinstance(key, str) else list(key or [])
        self.time_column: str | None = options.pop("time", None)
        window: WindowSpec | None = options.pop("window", None)
        lateness = options.pop("allowed_lateness", 0.0)
        aggregations = options.pop("aggregations", None)
        if options:
            raise ConfigurationError(f"stream() does not take option(s) {', '.join(sorted(options))}")
        if self.batch_size < 1 or self.max_batch_size < 1 or self.max_latency < 0:
            raise ConfigurationError("batch sizes must be >= 1 and max_latency >= 0")
        self.window_state: WindowState | None = None
        self.aggregations: list[pl.Expr] = []
        if mode in ("windowing", "aggregation"):
            if not isinstance(window, Tumbling | Sliding | Session) or not self.time_column:
                raise ConfigurationError(
                    f"mode {mode!r} needs window=Tumbling/Sliding/Session(...) and time=COLUMN"
                )
            if isinstance(lateness, timedelta):
                lateness = lateness.total_seconds()
            self.window_state = WindowState(
                window, time_column=self.time_column, key_columns=self.key_columns, allowed_lateness=lateness
            )
        if mode == "aggregation":
            self.aggregations = _aggregation_exprs(aggregations)
        self.target = min(32, self.max_batch_size)  # adaptive micro-batch size (streaming mode)
        self.buffer: list[pa.Table] = []
        self.buffered_rows = 0
        self.first_at: float | None = None
        self.pending: deque[_Pending] = deque()
        self.by_tag: dict[int, _Pending] = {}
        self.next_tag = 0
        self.late_rows = 0

    # -- feeding --------------------------------------------------------------------------------
    def feed(self, item: Any) -> list[tuple[pa.Table, list[Callable[[], None]]]]:
        table, ack = _normalize(item)
        tag = self.next_tag
        self.next_tag += 1
        entry = _Pending(tag, ack, 0)
        self.pending.append(entry)
        self.by_tag[tag] = entry
        if self.window_state is not None:
            tagged = table.append_column(TAG_COLUMN, pa.array([tag] * table.num_rows, pa.int64()))
            result = self.window_state.add(tagged)
            entry.remaining = sum(result.assigned.values())
            if result.late:
                self.late_rows += result.late
                self.ml._fire("late", {"model": self.model, "rows": result.late})
            return self._score_windows(result.closed)
        entry.remaining = table.num_rows
        if table.num_rows == 0:
            return [(pa.table({}), self._releasable())] if self._releasable() else []
        table = table.append_column(TAG_COLUMN, pa.array([tag] * table.num_rows, pa.int64()))
        if self.first_at is None:
            self.first_at = self.clock()
        self.buffer.append(table)
        self.buffered_rows += table.num_rows
        out = []
        size = self.batch_size if self.mode == "batch" else self.target
        while self.buffered_rows >= size:
            out.append(self._score_rows(self._take(size)))
            size = self.batch_size if self.mode == "batch" else self.target
        return out

    def due_in(self) -> float | None:
        """Seconds until the buffered events must be scored (streaming mode), None if nothing waits."""
        if self.mode != "streaming" or self.first_at is None or not self.buffered_rows:
            return None
        return max(0.0, self.first_at + self.max_latency - self.clock())

    def tick(self) -> list[tuple[pa.Table, list[Callable[[], None]]]]:
        """Score the buffer if its oldest event has waited ``max_latency``."""
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
                taken += head.num_rows
            else:
                parts.append(head.slice(0, need))
                self.buffer[0] = head.slice(need)
                taken += need
        self.buffered_rows -= rows
        self.first_at = self.clock() if self.buffered_rows else None
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    # -- scoring --------------------------------------------------------------------------------
    def _features(self, table: pa.Table, exclude: Sequence[str]) -> pa.Table:
        drop = [c for c in (*exclude, TAG_COLUMN) if c in table.column_names]
        return table.drop_columns(drop) if drop else table

    def _done(self, tags: Counter[int]) -> list[Callable[[], None]]:
        for tag, count in tags.items():
            self.by_tag[tag].remaining -= count
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
        keys = table.column(self.key_columns[0]).to_pylist() if self.key_columns else None
        start = time.perf_counter()
        result = self.ml._score(self.model, self._features(table, exclude), keys=keys)
        elapsed = time.perf_counter() - start
        if self.mode == "streaming":
            self._adapt(elapsed, table.num_rows)
        result = self._with_input(result, table)
        return result, self._done(Counter(table.column(TAG_COLUMN).to_pylist()))

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
            keep = [c for c in table.column_names if c != TAG_COLUMN]
        for index, name in enumerate(keep):
            result = result.add_column(index, name, table.column(name))
        return result

    def _bounds(self, windows: list[ClosedWindow], lengths: list[int]) -> tuple[pa.Array, pa.Array]:
        starts = [w.start for w, n in zip(windows, lengths) for _ in range(n)]
        ends = [w.end for w, n in zip(windows, lengths) for _ in range(n)]
        start_arr, end_arr = pa.array(starts, pa.float64()), pa.array(ends, pa.float64())
        assert self.window_state is not None
        assert self.time_column is not None
        sample = windows[0].rows
        if pa.types.is_timestamp(sample.schema.field(self.time_column).type):
            start_arr = (
                pa.array([s * 1e6 for s in starts], pa.float64()).cast(pa.int64()).cast(pa.timestamp("us"))
            )
            end_arr = (
                pa.array([e * 1e6 for e in ends], pa.float64()).cast(pa.int64()).cast(pa.timestamp("us"))
            )
        return start_arr, end_arr

    def _score_windows(self, windows: list[ClosedWindow]) -> list[tuple[pa.Table, list[Callable[[], None]]]]:
        if not windows:
            return [(pa.table({}), acks)] if (acks := self._releasable()) else []
        tags: Counter[int] = Counter()
        for window in windows:
            tags.update(window.rows.column(TAG_COLUMN).to_pylist())
        if self.mode == "aggregation":
            table = self._aggregate(windows)
            features = table.drop_columns([*self.key_columns, "window_start", "window_end"])
            keys = [w.key for w in windows] if self.key_columns else None
            result = self.ml._score(self.model, features, keys=keys)
            passthrough = (
                table
                if self.include_input
                else table.select([*self.key_columns, "window_start", "window_end"])
            )
        else:
            # one model call per window: window-level models (sequence, set) see exactly one window
            parts = []
            for window in windows:
                parts.append(self._score_window_rows(window))
            result = pa.concat_tables(parts, promote_options="permissive")
            return [(result, self._done(tags))]
        for index, name in enumerate(passthrough.column_names):
            result = result.add_column(index, name, passthrough.column(name))
        return [(result, self._done(tags))]

    def _score_window_rows(self, window: ClosedWindow) -> pa.Table:
        rows = window.rows
        starts, ends = self._bounds([window], [rows.num_rows])
        exclude = [*self.key_columns, self.time_column or ""]
        keys = [window.key] * rows.num_rows if self.key_columns else None
        result = self.ml._score(self.model, self._features(rows, exclude), keys=keys)
        base = rows.drop_columns([TAG_COLUMN]) if self.include_input else rows.select(self.key_columns)
        passthrough = base.append_column("window_start", starts).append_column("window_end", ends)
        for index, name in enumerate(passthrough.column_names):
            result = result.add_column(index, name, passthrough.column(name))
        return result

    def _aggregate(self, windows: list[ClosedWindow]) -> pa.Table:
        frames = []
        for window in windows:
            frame = pl.from_arrow(window.rows.drop_columns([TAG_COLUMN]))
            assert isinstance(frame, pl.DataFrame)
            row = frame.select(self.aggregations)
            extra = {name: [value] for name, value in zip(self.key_columns, window.key)}
            row = row.with_columns(
                *(pl.Series(name, values) for name, values in extra.items()),
                pl.lit(window.start).alias("window_start"),
                pl.lit(window.end).alias("window_end"),
            )
            frames.append(
                row.select(
                    [*self.key_columns, "window_start", "window_end", *row.columns[: len(self.aggregations)]]
                )
            )
        return pl.concat(frames, how="vertical_relaxed").to_arrow()


def _aggregation_exprs(aggregations: Any) -> list[pl.Expr]:
    if not aggregations:
        raise ConfigurationError("mode 'aggregation' needs aggregations={'name': ('column', 'mean'), ...}")
    if isinstance(aggregations, Mapping):
        exprs = []
        for name, spec in aggregations.items():
            if isinstance(spec, pl.Expr):
                exprs.append(spec.alias(name))
                continue
            column, how = spec
            if how not in _AGGREGATES:
                raise ConfigurationError(
                    f"unknown aggregate {how!r} for {name!r}; use one of {sorted(_AGGREGATES)}"
                )
            exprs.append(getattr(pl.col(column), how)().cast(pl.Float64).alias(name))
        return exprs
    return list(aggregations)
