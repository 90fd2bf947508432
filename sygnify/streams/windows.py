"""Event-time windows per key: tumbling, sliding and session, with allowed lateness.

Rows are assigned to windows by their event time (a timestamp or numeric column, in
seconds). The watermark is the largest event time seen minus ``allowed_lateness``; a
window is emitted once the watermark passes its end, and a row arriving for a window
already emitted is *late*: dropped and counted. ::

    >>> import pyarrow as pa
    >>> state = WindowState(Tumbling(10), time_column="t", key_columns=["user"])
    >>> first = state.add(pa.table({"user": ["a", "a", "b"], "t": [1.0, 4.0, 8.0]}))
    >>> first.closed
    []
    >>> later = state.add(pa.table({"user": ["a"], "t": [12.0]}))
    >>> [(w.key, w.start, w.end, w.rows.num_rows) for w in later.closed]
    [(('a',), 0.0, 10.0, 2), (('b',), 0.0, 10.0, 1)]
    >>> state.add(pa.table({"user": ["a"], "t": [3.0]})).late   # its window was emitted
    1

Windows also close on wall-clock idleness: with ``close_after=s`` a window that got no row for
``s`` seconds of the clock passed to ``add(..., now=)`` closes at :meth:`WindowState.close_idle`,
so a stream whose events stop still emits its last windows. :class:`Count` windows hold a fixed
number of rows per key. A spec's :meth:`~Tumbling.current` asks for running results (each
window every time rows join it) instead of :meth:`~Tumbling.final` (once, when it closes).
:meth:`WindowState.snapshot` and :meth:`WindowState.restore` carry the open windows across
processes (durable window state).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from sygnify.errors import ConfigurationError, SchemaError

__all__ = [
    "AddResult",
    "ClosedWindow",
    "Count",
    "Emit",
    "Hopping",
    "Session",
    "Sliding",
    "Tumbling",
    "WindowSpec",
    "WindowState",
]

TAG_COLUMN = "__sygnify_tag"
_WINDOW_ID = "__sygnify_window_id"
#: When a window's results are emitted: once when it closes, or every time rows join it.
Emit = Literal["final", "current"]


class _Emitting:
    """``.current()`` / ``.final()`` on every window spec (frozen dataclasses with ``emit``)."""

    emit: Emit

    def current(self) -> Any:
        """This window, emitting running results every time rows join a window (and when it closes).

        >>> Tumbling(10).current().emit
        'current'
        """
        return replace(self, emit="current")  # type: ignore[type-var]

    def final(self) -> Any:
        """This window, emitting each window's result once, when it closes (the default).

        >>> Tumbling(10).current().final().emit
        'final'
        """
        return replace(self, emit="final")  # type: ignore[type-var]


def _seconds(value: float | timedelta) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ConfigurationError(f"window sizes must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Tumbling(_Emitting):
    """Back-to-back windows of ``size`` seconds: ``[0, size), [size, 2*size), ...``."""

    size: float | timedelta
    emit: Emit = "final"

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _seconds(self.size))


@dataclass(frozen=True)
class Sliding(_Emitting):
    """Windows of ``size`` seconds starting every ``step`` seconds (a row is in ``size/step`` of them).

    Also known as hopping windows (:data:`Hopping` is the same class).
    """

    size: float | timedelta
    step: float | timedelta
    emit: Emit = "final"

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _seconds(self.size))
        object.__setattr__(self, "step", _seconds(self.step))
        if self.step > self.size:  # type: ignore[operator]
            raise ConfigurationError("a sliding window's step must not exceed its size")


#: Hopping windows are sliding windows: ``Hopping(size=60, step=10)``.
Hopping = Sliding


@dataclass(frozen=True)
class Session(_Emitting):
    """Windows per key that close after ``gap`` seconds without events."""

    gap: float | timedelta
    emit: Emit = "final"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gap", _seconds(self.gap))


@dataclass(frozen=True)
class Count(_Emitting):
    """Windows of ``size`` rows per key, in arrival order; bounds are the first and last event times.

    >>> state = WindowState(Count(2), time_column="t")
    >>> [(w.start, w.end, w.rows.num_rows) for w in state.add(pa.table({"t": [5.0, 7.0, 9.0]})).closed]
    [(5.0, 7.0, 2)]
    """

    size: int
    emit: Emit = "final"

    def __post_init__(self) -> None:
        if int(self.size) != self.size or self.size < 1:
            raise ConfigurationError(f"a count window's size must be a whole number >= 1, got {self.size!r}")


WindowSpec = Tumbling | Sliding | Session | Count


@dataclass
class ClosedWindow:
    """A window's key values, bounds (seconds) and rows; ``final`` is False for a running result."""

    key: tuple[Any, ...]
    start: float
    end: float
    rows: pa.Table
    final: bool = True


@dataclass
class AddResult:
    """What one ``add`` did: windows closed, rows dropped as late, window memberships per tag.

    ``late_rows`` are the indices (in the added table) of the late rows; ``current`` the
    running state of the windows rows joined (only for specs with ``emit="current"``).
    """

    closed: list[ClosedWindow]
    late: int = 0
    assigned: Counter[int] = field(default_factory=Counter)
    late_rows: list[int] = field(default_factory=list)
    current: list[ClosedWindow] = field(default_factory=list)


@dataclass
class _Open:
    start: float
    end: float
    parts: list[pa.Table] = field(default_factory=list)
    updated: float = 0.0  # the wall-clock time rows last joined it (close_after)
    rows: int = 0

    def table(self) -> pa.Table:
        """Its rows as one table (the parts are merged once and kept merged)."""
        if len(self.parts) > 1:
            self.parts = [pa.concat_tables(self.parts)]
        return self.parts[0]


def _encodable(dtype: pa.DataType) -> bool:
    """Whether Arrow's dictionary encoding groups a key column's values as Python equality does."""
    return bool(
        pat.is_integer(dtype)
        or pat.is_string(dtype)
        or pat.is_large_string(dtype)
        or pat.is_binary(dtype)
        or pat.is_large_binary(dtype)
        or pat.is_boolean(dtype)
    )


def event_seconds(table: pa.Table, column: str) -> np.ndarray[Any, Any]:
    """Event times of ``column`` as float seconds (timestamps since the epoch)."""
    if column not in table.column_names:
        raise SchemaError(f"event-time column {column!r} is not in the stream", resource=column)
    values = table.column(column)
    dtype = values.type
    if pat.is_timestamp(dtype):
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[dtype.unit]
        ints = pc.cast(values, pa.int64()).to_numpy()
        seconds_ts: np.ndarray[Any, Any] = ints.astype(np.float64) / per_second
        return seconds_ts
    if pat.is_integer(dtype) or pat.is_floating(dtype):
        seconds: np.ndarray[Any, Any] = np.asarray(values.to_numpy(), dtype=np.float64)
        return seconds
    raise SchemaError(
        f"event-time column {column!r} must be a timestamp or a number, got {dtype}", resource=column
    )


class WindowState:
    """Open windows per key, fed batch by batch; emits windows as the watermark passes them.

    ``close_after`` (seconds, optional) also closes a window that got no row for that long on
    the clock ``add(..., now=)`` and :meth:`close_idle` are given (wall-clock idleness).
    """

    def __init__(
        self,
        spec: WindowSpec,
        *,
        time_column: str | None,
        key_columns: list[str] | tuple[str, ...] = (),
        allowed_lateness: float | timedelta = 0.0,
        close_after: float | timedelta | None = None,
    ) -> None:
        self.spec = spec
        if time_column is None and not isinstance(spec, Count):
            raise ConfigurationError("time windows need the event-time column (time=COLUMN)")
        self.time_column = time_column
        self.key_columns = list(key_columns)
        lateness = (
            allowed_lateness.total_seconds() if isinstance(allowed_lateness, timedelta) else allowed_lateness
        )
        if lateness < 0:
            raise ConfigurationError("allowed_lateness must be >= 0")
        self.allowed_lateness = float(lateness)
        self.close_after = None if close_after is None else _seconds(close_after)
        self.max_event_time = -math.inf
        # the largest event time per source partition, and the partitions still behind (with
        # messages not read yet): the watermark follows the slowest of those
        self._partition_max: dict[str, float] = {}
        self._lagging: list[str] | None = None
        self.late_rows = 0
        self._open: dict[tuple[Any, ...], list[_Open]] = {}
        # windows closed on idleness before the watermark passed them: (key, start) -> end.
        # Rows for them are late (a window is emitted once); forgotten once the watermark passes.
        self._closed_early: dict[tuple[tuple[Any, ...], float], float] = {}
        self._counted = 0  # rows seen by count windows (their bounds without a time column)

    @property
    def watermark(self) -> float:
        """Event time up to which windows are complete, less ``allowed_lateness``.

        Rows added with ``partitions=`` and ``lagging=`` (the partitions that still hold
        unread messages, e.g. Kafka's) move it only as far as the slowest lagging partition,
        so a partition read later than another does not make its events late; partitions that
        are caught up do not hold it back.
        """
        if self._lagging:
            held = min(self._partition_max.get(p, -math.inf) for p in self._lagging)
            return min(held, self.max_event_time) - self.allowed_lateness
        return self.max_event_time - self.allowed_lateness

    @property
    def emit(self) -> Emit:
        return self.spec.emit

    def _keys(self, table: pa.Table) -> list[tuple[Any, ...]]:
        if not self.key_columns:
            return [()] * table.num_rows
        self._check_keys(table)
        return list(zip(*(table.column(c).to_pylist() for c in self.key_columns)))

    def _check_keys(self, table: pa.Table) -> None:
        for column in self.key_columns:
            if column not in table.column_names:
                raise SchemaError(f"window key column {column!r} is not in the stream", resource=column)

    def _python_key_codes(self, table: pa.Table) -> tuple[np.ndarray[Any, Any], list[tuple[Any, ...]]]:
        code_of: dict[tuple[Any, ...], int] = {}
        keys = self._keys(table)
        codes = np.fromiter(
            (code_of.setdefault(key, len(code_of)) for key in keys), np.int64, count=len(keys)
        )
        return codes, list(code_of)

    def _key_codes(self, table: pa.Table) -> tuple[np.ndarray[Any, Any], list[tuple[Any, ...]]]:
        """Each row's key as a small integer (numbered in order of first appearance) and the keys.

        Integer, string, binary and boolean key columns are encoded by Arrow, converting only
        the distinct values to Python; other types (floats, whose NaN and -0.0 compare unlike
        Arrow's values, timestamps, nested values) take the per-row Python path.
        """
        n = table.num_rows
        if not self.key_columns:
            return np.zeros(n, dtype=np.int64), [()]
        self._check_keys(table)
        columns = [table.column(c) for c in self.key_columns]
        if not all(_encodable(column.type) for column in columns):
            return self._python_key_codes(table)
        indices, values = [], []
        for column in columns:
            encoded = pc.dictionary_encode(column.combine_chunks(), null_encoding="encode")
            indices.append(np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64))
            values.append(encoded.dictionary.to_pylist())
        if len(columns) == 1:  # Arrow numbers the values in order of first appearance already
            return indices[0], [(value,) for value in values[0]]
        if math.prod(len(column_values) for column_values in values) >= 2**62:
            return self._python_key_codes(table)  # the combined code would overflow int64
        combined = np.zeros(n, dtype=np.int64)
        for index, column_values in zip(indices, values, strict=True):
            combined = combined * len(column_values) + index
        _, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # distinct combinations by first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        rows = first[order]
        distinct = list(
            zip(
                *(
                    [column_values[i] for i in index[rows].tolist()]
                    for index, column_values in zip(indices, values, strict=True)
                )
            )
        )
        return rank[inverse.reshape(-1)], distinct

    def add(
        self,
        table: pa.Table,
        *,
        now: float = 0.0,
        partitions: Sequence[str] | None = None,
        lagging: Sequence[str] | None = None,
    ) -> AddResult:
        """Add rows (arrived at wall-clock ``now``); return the windows the new watermark closes.

        ``partitions`` names each row's source partition and ``lagging`` the partitions still
        behind (see :attr:`watermark`).

        >>> state = WindowState(Tumbling(10), time_column="t")
        >>> state.add(pa.table({"t": [25.0]}), partitions=["p0"], lagging=["p0", "p1"]).closed
        []
        >>> late = state.add(pa.table({"t": [3.0]}), partitions=["p1"], lagging=[])
        >>> late.late, [(w.start, w.rows.num_rows) for w in late.closed]  # p1 was behind: not late
        (0, [(0.0, 1)])
        """
        result = AddResult([])
        if table.num_rows == 0:
            return result
        touched: set[tuple[tuple[Any, ...], int]] = set()
        if isinstance(self.spec, Count):
            self._add_count(table, now, result, touched)
        else:
            assert self.time_column is not None
            times = event_seconds(table, self.time_column)
            watermark_before = self.watermark
            if isinstance(self.spec, Session):
                self._add_session(table, times, watermark_before, result, now, touched)
            else:
                self._add_fixed(table, times, watermark_before, result, now, touched)
            self.max_event_time = max(self.max_event_time, float(np.nanmax(times)))
            if partitions is not None:
                self._track_partitions(times, partitions)
        if lagging is not None:
            self._lagging = list(lagging)
        self.late_rows += result.late
        if self.emit == "current":
            result.current = self._running(touched)
        result.closed = result.closed + self._close(self.watermark)
        return result

    def _track_partitions(self, times: np.ndarray[Any, Any], partitions: Sequence[str]) -> None:
        if len(partitions) != len(times):
            raise ValueError(f"{len(partitions)} partitions for {len(times)} rows")
        highest: dict[str, float] = {}
        distinct = list(dict.fromkeys(partitions))  # in order of first appearance
        if len(distinct) == 1:
            groups = [(distinct[0], times)]
        else:
            names = np.asarray(partitions, dtype=object)
            groups = [(partition, times[names == partition]) for partition in distinct]
        for partition, values in groups:
            known = values[~np.isnan(values)]
            if known.size:
                highest[partition] = float(known.max())
        for partition, t in highest.items():
            if t > self._partition_max.get(partition, -math.inf):
                self._partition_max[partition] = t

    def flush(self) -> list[ClosedWindow]:
        """Close every open window (end of stream)."""
        return self._close(math.inf)

    def close_idle(self, now: float) -> list[ClosedWindow]:
        """Close the windows that got no row for ``close_after`` seconds before ``now``."""
        if self.close_after is None:
            return []
        limit = now - self.close_after
        return self._close(math.inf, idle_before=limit)

    def idle_due_in(self, now: float) -> float | None:
        """Seconds until the next window closes on idleness (None: no ``close_after``, or none open)."""
        if self.close_after is None or not self._open:
            return None
        oldest = min(w.updated for windows in self._open.values() for w in windows)
        return max(0.0, oldest + self.close_after - now)

    @property
    def open_windows(self) -> int:
        return sum(len(windows) for windows in self._open.values())

    def _tags(self, table: pa.Table) -> np.ndarray[Any, Any] | None:
        return table.column(TAG_COLUMN).to_numpy() if TAG_COLUMN in table.column_names else None

    def _add_fixed(
        self,
        table: pa.Table,
        times: np.ndarray[Any, Any],
        watermark: float,
        result: AddResult,
        now: float,
        touched: set[tuple[tuple[Any, ...], int]],
    ) -> None:
        spec = self.spec
        size = float(spec.size)  # type: ignore[union-attr, arg-type]
        step = float(spec.step) if isinstance(spec, Sliding) else size  # type: ignore[arg-type]
        copies = math.ceil(size / step)
        first = np.floor(times / step) * step
        tags = self._tags(table)
        # each distinct key as a small integer: rows are grouped by (start, key) in numpy
        codes, distinct = self._key_codes(table)
        live_anywhere = np.zeros(table.num_rows, dtype=bool)
        assigned: list[np.ndarray[Any, Any]] = []
        for offset in range(copies):
            starts = first - offset * step
            inside = (starts <= times) & (times < starts + size)
            live = np.flatnonzero(inside & (starts + size > watermark))
            if not live.size:
                continue
            order = np.lexsort((codes[live], starts[live]))  # stable: rows keep their order
            rows = live[order]
            row_starts, row_codes = starts[rows], codes[rows]
            cuts = np.flatnonzero((np.diff(row_starts) != 0) | (np.diff(row_codes) != 0)) + 1
            bounds = [0, *cuts.tolist(), len(rows)]
            taken = table.take(pa.array(rows))  # one take per copy; each window gets a slice
            for begin, stop in itertools.pairwise(bounds):
                key, start = distinct[row_codes[begin]], float(row_starts[begin])
                if (key, start) in self._closed_early:
                    continue  # emitted on idleness already: late for this window
                members = rows[begin:stop]
                live_anywhere[members] = True
                window = self._window(key, start, start + size)
                window.parts.append(taken.slice(begin, stop - begin))
                window.updated = now
                window.rows += stop - begin
                touched.add((key, id(window)))
                assigned.append(members)
        if tags is not None and assigned:
            values, counts = np.unique(tags[np.concatenate(assigned)], return_counts=True)
            result.assigned.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
        # a row is late when no window it belongs to is still open (NaN times included)
        late = np.flatnonzero(~live_anywhere)
        result.late += len(late)
        result.late_rows.extend(late.tolist())

    def _window(self, key: tuple[Any, ...], start: float, end: float) -> _Open:
        windows = self._open.setdefault(key, [])
        for window in windows:
            if window.start == start:
                return window
        window = _Open(start, end)
        windows.append(window)
        return window

    def _add_session(
        self,
        table: pa.Table,
        times: np.ndarray[Any, Any],
        watermark: float,
        result: AddResult,
        now: float,
        touched: set[tuple[tuple[Any, ...], int]],
    ) -> None:
        gap = float(self.spec.gap)  # type: ignore[union-attr, arg-type]
        keys = self._keys(table)
        tags = self._tags(table)
        for index in np.argsort(times, kind="stable").tolist():
            t = float(times[index])
            if not t + gap > watermark:  # NaN too
                result.late += 1
                result.late_rows.append(index)
                continue
            key = keys[index]
            sessions = self._open.setdefault(key, [])
            touching = [s for s in sessions if s.start - gap <= t <= s.end]
            row = table.slice(index, 1)
            if not touching:
                merged = _Open(t, t + gap, [row])
                sessions.append(merged)
            else:
                merged = touching[0]
                for other in touching[1:]:
                    merged.parts.extend(other.parts)
                    merged.rows += other.rows
                    merged.start, merged.end = min(merged.start, other.start), max(merged.end, other.end)
                    sessions.remove(other)
                    touched.discard((key, id(other)))
                merged.parts.append(row)
                merged.start, merged.end = min(merged.start, t), max(merged.end, t + gap)
            merged.updated = now
            merged.rows += 1
            touched.add((key, id(merged)))
            if tags is not None:
                result.assigned[int(tags[index])] += 1

    def _add_count(
        self, table: pa.Table, now: float, result: AddResult, touched: set[tuple[tuple[Any, ...], int]]
    ) -> None:
        assert isinstance(self.spec, Count)
        size = int(self.spec.size)
        keys = self._keys(table)
        tags = self._tags(table)
        times = event_seconds(table, self.time_column) if self.time_column else None
        by_key: dict[tuple[Any, ...], list[int]] = {}
        for index, key in enumerate(keys):
            by_key.setdefault(key, []).append(index)
        for key, indices in by_key.items():
            at = 0
            while at < len(indices):
                windows = self._open.setdefault(key, [])
                if not windows:
                    windows.append(_Open(math.nan, math.nan))
                window = windows[0]
                take = indices[at : at + size - window.rows]
                at += len(take)
                window.parts.append(table.take(pa.array(take)))
                window.rows += len(take)
                window.updated = now
                first = float(times[take[0]]) if times is not None else float(self._counted + take[0])
                last = float(times[take[-1]]) if times is not None else float(self._counted + take[-1])
                window.start = first if math.isnan(window.start) else min(window.start, first)
                window.end = last if math.isnan(window.end) else max(window.end, last)
                touched.add((key, id(window)))
                if tags is not None:
                    result.assigned.update(tags[take].tolist())
                if window.rows >= size:
                    del self._open[key]
                    result.closed.append(self._closed(key, window))
        self._counted += table.num_rows

    @staticmethod
    def _closed(key: tuple[Any, ...], window: _Open) -> ClosedWindow:
        return ClosedWindow(key, window.start, window.end, window.table())

    def _running(self, touched: set[tuple[tuple[Any, ...], int]]) -> list[ClosedWindow]:
        running = []
        for key, windows in self._open.items():
            for window in windows:
                if (key, id(window)) in touched:
                    running.append(ClosedWindow(key, window.start, window.end, window.table(), final=False))
        running.sort(key=lambda w: (w.end, w.start, tuple(str(k) for k in w.key)))
        return running

    def _close(self, watermark: float, *, idle_before: float | None = None) -> list[ClosedWindow]:
        closed: list[ClosedWindow] = []
        for key in list(self._open):
            still_open = []
            for window in self._open[key]:
                idle = idle_before is not None and window.updated <= idle_before
                if (idle_before is None and window.end <= watermark) or idle:
                    closed.append(self._closed(key, window))
                    if idle and not isinstance(self.spec, Session | Count):
                        self._closed_early[(key, window.start)] = window.end
                else:
                    still_open.append(window)
            if still_open:
                self._open[key] = still_open
            else:
                del self._open[key]
        if self._closed_early and idle_before is None:
            self._closed_early = {k: end for k, end in self._closed_early.items() if end > watermark}
        closed.sort(key=lambda w: (w.end, w.start, tuple(str(k) for k in w.key)))
        return closed

    # -- durable state ----------------------------------------------------------------------
    def snapshot(self) -> tuple[pa.Table | None, dict[str, Any]]:
        """The open windows as one Arrow table (their rows, with a window id) and a JSON-able dict.

        >>> state = WindowState(Tumbling(10), time_column="t")
        >>> _ = state.add(pa.table({"t": [1.0, 2.0]}))
        >>> rows, meta = state.snapshot()
        >>> again = WindowState(Tumbling(10), time_column="t")
        >>> again.restore(rows, meta)
        >>> [(w.start, w.rows.num_rows) for w in again.flush()]
        [(0.0, 2)]
        """
        parts: list[pa.Table] = []
        windows: list[dict[str, Any]] = []
        for open_windows in self._open.values():
            for window in open_windows:
                rows = window.table()
                wid = len(windows)
                windows.append(
                    {"id": wid, "start": window.start, "end": window.end, "updated": window.updated}
                )
                parts.append(rows.append_column(_WINDOW_ID, pa.array([wid] * rows.num_rows, pa.int64())))
        table = pa.concat_tables(parts, promote_options="permissive") if parts else None
        meta = {
            "max_event_time": None if math.isinf(self.max_event_time) else self.max_event_time,
            "partition_max": dict(self._partition_max),
            "late_rows": self.late_rows,
            "counted": self._counted,
            "windows": windows,
            "closed_early": [[list(key), start, end] for (key, start), end in self._closed_early.items()],
        }
        return table, meta

    def restore(self, rows: pa.Table | None, meta: dict[str, Any]) -> None:
        """Reload what :meth:`snapshot` gave (the open windows, watermark and counters)."""
        self._open = {}
        met = meta.get("max_event_time")
        self.max_event_time = -math.inf if met is None else float(met)
        self._partition_max = {str(k): float(v) for k, v in meta.get("partition_max", {}).items()}
        self.late_rows = int(meta.get("late_rows", 0))
        self._counted = int(meta.get("counted", 0))
        self._closed_early = {
            (tuple(key), float(start)): float(end) for key, start, end in meta.get("closed_early", [])
        }
        if rows is None or not meta.get("windows"):
            return
        ids = rows.column(_WINDOW_ID)
        plain = rows.drop_columns([_WINDOW_ID])
        for window in meta["windows"]:
            part = plain.filter(pc.equal(ids, window["id"]))
            if not part.num_rows:
                continue
            key = self._keys(part.slice(0, 1))[0]
            self._open.setdefault(key, []).append(
                _Open(
                    float(window["start"]),
                    float(window["end"]),
                    [part],
                    float(window.get("updated", 0.0)),
                    part.num_rows,
                )
            )
