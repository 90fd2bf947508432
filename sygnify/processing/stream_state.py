"""Durable state of a windowed stream: open windows, source progress and results not yet delivered.

A windowed stream holds events for as long as their windows are open. Without durable state
their source batches must stay unacknowledged until then (or a crash would lose them); with a
:class:`StreamCheckpoint` the windows themselves are saved, so batches are acknowledged as soon
as their events are in a saved state, and a restart resumes the windows where they were.

One save is one atomic step (``Checkpoint.save``: temporary file, fsync, rename) holding:

- the open windows (their rows, in an Arrow IPC side file of that generation),
- the source *progress*: per partition, the positions already taken in (:class:`Progress`),
  so records delivered again after a crash (acknowledged too late) are skipped, not counted
  twice,
- the *outbox*: the results of the windows this step closed, with their sequence number.

The driver then acknowledges the source, writes the outbox to the sink under the label of
its sequence number (an idempotent write: the same label replaces, never duplicates) and
yields it. A crash anywhere re-runs from the last save: the outbox is written again under
the same label and the skipped records are not added twice, so every window's result reaches
the sink exactly once.

>>> import tempfile, pyarrow as pa
>>> from sygnify.streams.windows import Tumbling, WindowState
>>> state = WindowState(Tumbling(10), time_column="t")
>>> _ = state.add(pa.table({"t": [1.0, 2.0]}))
>>> store = StreamCheckpoint(tempfile.mkdtemp() + "/stream.json")
>>> progress = Progress()
>>> progress.add([("p0", 7)], in_order=True)
>>> store.save(state, progress, outbox=None)  # the outbox sequence: no results yet
0
>>> saved = store.load()
>>> again = WindowState(Tumbling(10), time_column="t")
>>> saved.restore(again)
>>> saved.progress.seen("p0", 7, in_order=True), [w.rows.num_rows for w in again.flush()]
(True, [2])
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from sygnify.errors import ConfigurationError
from sygnify.processing.checkpoint import Checkpoint
from sygnify.processing.run_lock import DEFAULT_LEASE_TTL
from sygnify.streams.windows import WindowState

__all__ = ["Progress", "SavedStream", "StreamCheckpoint"]

#: How long (seconds) a restarted run keeps the previous run's session tokens (MQTT): the
#: broker redelivers a session's unacknowledged messages as soon as the client reconnects.
RESTORED_TOKENS_S = 30.0
#: How many disjoint position ranges a partition may keep (unordered sources): beyond it the
#: oldest are merged, which can only skip records delivered again very late.
MAX_RANGES = 10_000


def _comparable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class Progress:
    """The positions a durable stream took in, per source partition.

    For a source delivering each partition in order (Kafka offsets, Redis stream ids) the
    highest position is enough: anything at or below it came before. For one that redelivers
    late (NATS JetStream after ``ack_wait``) the integer positions are kept as ranges. For one
    whose messages have no lasting position but keep an identity while unacknowledged (MQTT:
    a redelivered message carries its packet identifier and the DUP flag) the *tokens* taken
    in since the last acknowledgement are kept (``tokens=True``, positions ``(token,
    redelivered)``): a redelivered message whose token is among them was saved already.

    >>> progress = Progress()
    >>> progress.add([("s", 1), ("s", 2), ("s", 5)], in_order=False)
    >>> [progress.seen("s", n, in_order=False) for n in (1, 3, 5)]
    [True, False, True]
    >>> progress.add([("session", ("7:9f2c", False))], in_order=False, tokens=True)
    >>> [progress.seen("session", (t, dup), in_order=False, tokens=True)
    ...  for t, dup in [("7:9f2c", True), ("7:9f2c", False), ("8:0a1b", True)]]
    [True, False, False]
    >>> progress.acknowledged(); progress.seen("session", ("7:9f2c", True), in_order=False, tokens=True)
    False
    """

    def __init__(self, marks: dict[str, Any] | None = None) -> None:
        self.high: dict[str, Any] = {}
        self.ranges: dict[str, list[list[int]]] = {}
        self.tokens: dict[str, set[str]] = {}
        for key, mark in (marks or {}).get("high", {}).items():
            self.high[key] = _comparable(mark)
        for key, ranges in (marks or {}).get("ranges", {}).items():
            self.ranges[key] = [list(r) for r in ranges]
        # tokens of the run before a restart: the broker redelivers its unacknowledged
        # messages as the new session starts; kept for RESTORED_TOKENS_S of this run
        self.restored: dict[str, set[str]] = {}
        for key, tokens in (marks or {}).get("tokens", {}).items():
            self.restored[key] = set(tokens)
        self._restored_until = time.monotonic() + RESTORED_TOKENS_S

    @property
    def empty(self) -> bool:
        """Whether nothing was taken in yet (nothing can be skipped)."""
        return not (self.high or self.ranges or any(self.tokens.values()) or any(self.restored.values()))

    def seen(self, key: str, position: Any, *, in_order: bool, tokens: bool = False) -> bool:
        if tokens:
            token, redelivered = position
            return bool(redelivered) and (
                token in self.tokens.get(key, ()) or token in self.restored.get(key, ())
            )
        if in_order:
            high = self.high.get(key)
            return high is not None and position <= high
        ranges = self.ranges.get(key)
        if not ranges:
            return False
        index = bisect.bisect_right(ranges, [position, float("inf")]) - 1
        return index >= 0 and ranges[index][0] <= position <= ranges[index][1]

    def add(self, positions: Iterable[tuple[str, Any]], *, in_order: bool, tokens: bool = False) -> None:
        for key, position in positions:
            if tokens:
                self.tokens.setdefault(key, set()).add(position[0])
            elif in_order:
                high = self.high.get(key)
                if high is None or position > high:
                    self.high[key] = position
            else:
                self._add_range(key, int(position))

    def _add_range(self, key: str, position: int) -> None:
        ranges = self.ranges.setdefault(key, [])
        index = bisect.bisect_right(ranges, [position, float("inf")])
        if index and ranges[index - 1][0] <= position <= ranges[index - 1][1]:
            return
        joins_left = index and ranges[index - 1][1] == position - 1
        joins_right = index < len(ranges) and ranges[index][0] == position + 1
        if joins_left and joins_right:
            ranges[index - 1][1] = ranges[index][1]
            del ranges[index]
        elif joins_left:
            ranges[index - 1][1] = position
        elif joins_right:
            ranges[index][0] = position
        else:
            ranges.insert(index, [position, position])
        if len(ranges) > MAX_RANGES:
            first = ranges.pop(0)
            ranges[0][0] = first[0]

    def acknowledged(self) -> None:
        """Everything taken in so far was acknowledged: its tokens can never come again (the
        previous run's are kept a while: the broker may still be redelivering them)."""
        self.tokens.clear()
        if self.restored and time.monotonic() >= self._restored_until:
            self.restored.clear()

    def to_json(self) -> dict[str, Any]:
        tokens = {k: set(v) for k, v in self.tokens.items()}
        for key, old in self.restored.items():
            tokens.setdefault(key, set()).update(old)
        return {
            "high": dict(self.high),
            "ranges": {k: v for k, v in self.ranges.items() if v},
            "tokens": {k: sorted(v) for k, v in tokens.items() if v},
        }


@dataclass
class SavedStream:
    """What :meth:`StreamCheckpoint.load` found: restore the windows with :meth:`restore`."""

    windows: pa.Table | None
    window_meta: dict[str, Any]
    progress: Progress
    outbox: pa.Table | None
    sequence: int
    extra: dict[str, Any] = field(default_factory=dict)

    def restore(self, state: WindowState) -> None:
        """Put the saved open windows, watermark and counters into ``state``."""
        state.restore(self.windows, self.window_meta)


class StreamCheckpoint:
    """Where a windowed stream keeps its durable state: ``path`` (local or ``s3://...``).

    ``interval``: seconds between saves while no window closes (a step that closes windows
    always saves, before its results are delivered). Batches are acknowledged at each save,
    so a crash re-reads at most ``interval`` seconds of events. Only one run may use a
    checkpoint at a time (:meth:`lock`; a second raises ``ConcurrentRunError``).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        interval: float = 1.0,
        filesystem: pafs.FileSystem | None = None,
        lock_ttl: float = DEFAULT_LEASE_TTL,
    ) -> None:
        if interval < 0:
            raise ConfigurationError(f"checkpoint interval must be >= 0 seconds, got {interval}")
        self.interval = interval
        self.store = Checkpoint(path, filesystem=filesystem, interval=interval, lock_ttl=lock_ttl)
        self.path = self.store.path
        self.generation = 0
        self.sequence = 0  # results delivered so far (the outbox's label)

    def lock(self) -> Any:
        """Hold the checkpoint for one run (a context manager)."""
        return self.store.lock()

    def load(self) -> SavedStream | None:
        """The last saved state, or None before the first save."""
        state = self.store.load()
        if state is None:
            return None
        if state.get("kind") != "stream":
            raise ConfigurationError(
                f"checkpoint {self.path} does not hold a stream's state (written by another job?)",
                resource=self.path,
            )
        self.generation = int(state["generation"])
        self.sequence = int(state["sequence"])
        windows = self.store.read_arrow(f"w{self.generation}") if state.get("has_windows") else None
        outbox = self.store.read_arrow(f"o{self.generation}") if state.get("has_outbox") else None
        return SavedStream(
            windows,
            state["windows"],
            Progress(state["progress"]),
            outbox,
            self.sequence,
            state.get("extra", {}),
        )

    def save(
        self,
        state: WindowState | None,
        progress: Progress,
        *,
        outbox: Sequence[pa.Table] | pa.Table | None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Save atomically; returns the outbox's sequence number (its sink label)."""
        previous = self.generation
        generation = previous + 1
        rows, meta = state.snapshot() if state is not None else (None, {})
        if rows is not None:
            self.store.write_arrow(f"w{generation}", rows)
        tables = [outbox] if isinstance(outbox, pa.Table) else [t for t in outbox or () if t.num_columns]
        box = pa.concat_tables(tables, promote_options="permissive") if tables else None
        if box is not None:
            self.store.write_arrow(f"o{generation}", box)
            self.sequence += 1
        self.store.save(
            {
                "kind": "stream",
                "generation": generation,
                "sequence": self.sequence,
                "windows": meta,
                "has_windows": rows is not None,
                "has_outbox": box is not None,
                "progress": progress.to_json(),
                "extra": extra or {},
            }
        )
        self.generation = generation
        for tag in (f"w{previous}", f"o{previous}"):
            self.store.delete_side(tag)
        return self.sequence

    def __repr__(self) -> str:
        return f"StreamCheckpoint({self.path!r}, interval={self.interval})"
