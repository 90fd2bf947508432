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
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from sygnify.errors import ConfigurationError, SchemaError

__all__ = ["AddResult", "ClosedWindow", "Session", "Sliding", "Tumbling", "WindowSpec", "WindowState"]

TAG_COLUMN = "__sygnify_tag"


def _seconds(value: float | timedelta) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ConfigurationError(f"window sizes must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class Tumbling:
    """Back-to-back windows of ``size`` seconds: ``[0, size), [size, 2*size), ...``."""

    size: float | timedelta

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _seconds(self.size))


@dataclass(frozen=True)
class Sliding:
    """Windows of ``size`` seconds starting every ``step`` seconds (a row is in ``size/step`` of them)."""

    size: float | timedelta
    step: float | timedelta

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _seconds(self.size))
        object.__setattr__(self, "step", _seconds(self.step))
        if self.step > self.size:  # type: ignore[operator]
            raise ConfigurationError("a sliding window's step must not exceed its size")


@dataclass(frozen=True)
class Session:
    """Windows per key that close after ``gap`` seconds without events."""

    gap: float | timedelta

    def __post_init__(self) -> None:
        object.__setattr__(self, "gap", _seconds(self.gap))


WindowSpec = Tumbling | Sliding | Session


@dataclass
class ClosedWindow:
    """A finished window: its key values, bounds (seconds) and rows."""

    key: tuple[Any, ...]
    start: float
    end: float
    rows: pa.Table


@dataclass
class AddResult:
    """What one ``add`` did: windows closed, rows dropped as late, window memberships per tag."""

    closed: list[ClosedWindow]
    late: int = 0
    assigned: Counter[int] = field(default_factory=Counter)


@dataclass
class _Open:
    start: float
    end: float
    parts: list[pa.Table] = field(default_factory=list)


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
    """Open windows per key, fed batch by batch; emits windows as the watermark passes them."""

    def __init__(
        self,
        spec: WindowSpec,
        *,
        time_column: str,
        key_columns: list[str] | tuple[str, ...] = (),
        allowed_lateness: float | timedelta = 0.0,
    ) -> None:
        self.spec = spec
        self.time_column = time_column
        self.key_columns = list(key_columns)
        lateness = (
            allowed_lateness.total_seconds() if isinstance(allowed_lateness, timedelta) else allowed_lateness
        )
        if lateness < 0:
            raise ConfigurationError("allowed_lateness must be >= 0")
        self.allowed_lateness = float(lateness)
        self.max_event_time = -math.inf
        self.late_rows = 0
        self._open: dict[tuple[Any, ...], list[_Open]] = {}

    @property
    def watermark(self) -> float:
        return self.max_event_time - self.allowed_lateness

    def _keys(self, table: pa.Table) -> list[tuple[Any, ...]]:
        if not self.key_columns:
            return [()] * table.num_rows
        for column in self.key_columns:
            if column not in table.column_names:
                raise SchemaError(f"window key column {column!r} is not in the stream", resource=column)
        return list(zip(*(table.column(c).to_pylist() for c in self.key_columns)))

    def add(self, table: pa.Table) -> AddResult:
        """Add rows; return the windows the new watermark closes."""
        result = AddResult([])
        if table.num_rows == 0:
            return result
        times = event_seconds(table, self.time_column)
        watermark_before = self.watermark
        if isinstance(self.spec, Session):
            self._add_session(table, times, watermark_before, result)
        else:
            self._add_fixed(table, times, watermark_before, result)
        self.max_event_time = max(self.max_event_time, float(np.nanmax(times)))
        self.late_rows += result.late
        result.closed = self._close(self.watermark)
        return result

    def flush(self) -> list[ClosedWindow]:
        """Close every open window (end of stream)."""
        return self._close(math.inf)

    def _tags(self, table: pa.Table) -> np.ndarray[Any, Any] | None:
        return table.column(TAG_COLUMN).to_numpy() if TAG_COLUMN in table.column_names else None

    def _add_fixed(
        self, table: pa.Table, times: np.ndarray[Any, Any], watermark: float, result: AddResult
    ) -> None:
        spec = self.spec
        size = float(spec.size)  # type: ignore[union-attr, arg-type]
        step = float(spec.step) if isinstance(spec, Sliding) else size  # type: ignore[arg-type]
        copies = math.ceil(size / step)
        first = np.floor(times / step) * step
        keys = self._keys(table)
        tags = self._tags(table)
        frame = pl.DataFrame({"row": np.arange(table.num_rows), "first": first})
        for offset in range(copies):
            starts = first - offset * step
            inside = (starts <= times) & (times < starts + size)
            ends = starts + size
            live = inside & (ends > watermark)
            result.late += int(np.sum(inside & ~live)) if offset == 0 else 0
            if not live.any():
                continue
            selected = frame.filter(pl.Series(live)).with_columns(pl.Series("start", starts[live]))
            for (start,), group in selected.group_by(["start"], maintain_order=True):
                rows = group["row"].to_numpy()
                by_key: dict[tuple[Any, ...], list[int]] = {}
                for r in rows.tolist():
                    by_key.setdefault(keys[r], []).append(r)
                for key, indices in by_key.items():
                    part = table.take(pa.array(indices))
                    self._window(key, float(start), float(start) + size).parts.append(part)
                    if tags is not None:
                        result.assigned.update(tags[indices].tolist())

    def _window(self, key: tuple[Any, ...], start: float, end: float) -> _Open:
        windows = self._open.setdefault(key, [])
        for window in windows:
            if window.start == start:
                return window
        window = _Open(start, end)
        windows.append(window)
        return window

    def _add_session(
        self, table: pa.Table, times: np.ndarray[Any, Any], watermark: float, result: AddResult
    ) -> None:
        gap = float(self.spec.gap)  # type: ignore[union-attr, arg-type]
        keys = self._keys(table)
        tags = self._tags(table)
        for index in np.argsort(times, kind="stable").tolist():
            t = float(times[index])
            if t + gap <= watermark:
                result.late += 1
                continue
            key = keys[index]
            sessions = self._open.setdefault(key, [])
            touching = [s for s in sessions if s.start - gap <= t <= s.end]
            row = table.slice(index, 1)
            if not touching:
                sessions.append(_Open(t, t + gap, [row]))
            else:
                merged = touching[0]
                for other in touching[1:]:
                    merged.parts.extend(other.parts)
                    merged.start, merged.end = min(merged.start, other.start), max(merged.end, other.end)
                    sessions.remove(other)
                merged.parts.append(row)
                merged.start, merged.end = min(merged.start, t), max(merged.end, t + gap)
            if tags is not None:
                result.assigned[int(tags[index])] += 1

    def _close(self, watermark: float) -> list[ClosedWindow]:
        closed: list[ClosedWindow] = []
        for key in list(self._open):
            still_open = []
            for window in self._open[key]:
                if window.end <= watermark:
                    rows = pa.concat_tables(window.parts) if len(window.parts) > 1 else window.parts[0]
                    closed.append(ClosedWindow(key, window.start, window.end, rows))
                else:
                    still_open.append(window)
            if still_open:
                self._open[key] = still_open
            else:
                del self._open[key]
        closed.sort(key=lambda w: (w.end, w.start, tuple(str(k) for k in w.key)))
        return closed
