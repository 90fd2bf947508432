"""An in-process stream: a log of messages with committed offsets, for examples, tests and notebooks.

:class:`MemoryLog` is the "server" (one partition, messages in order, one committed offset
per consumer group); :class:`MemorySource` consumes it like a Kafka consumer: a batch's
``ack()`` commits its offsets, and a new source of the same group starts after the last
commit, so what was read and not acknowledged is delivered again (at-least-once). It has
every option of a source (decoder, ``schema=``, dead letters, backpressure). ::

    >>> log = MemoryLog([{"t": 1.0}, {"t": 2.0}, "not json"])
    >>> source = MemorySource(log)
    >>> batch = source.read(max_records=10)
    >>> batch.batch.to_pydict(), [d["reason"][:15] for d in batch.dead_letters]
    ({'t': [1.0, 2.0]}, ['JSONDecodeError'])
    >>> batch.ack(); log.committed("default")
    3
    >>> log.append({"t": 3.0}); MemorySource(log).read().batch.to_pydict()   # after the commit
    {'t': [3.0]}
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from sygnify.streams.base import BaseSource, RawMessage

__all__ = ["MemoryLog", "MemorySource"]


def _encode(message: bytes | str | Mapping[str, Any]) -> bytes:
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        return message.encode()
    return json.dumps(dict(message)).encode()


class MemoryLog:
    """An append-only log of messages (bytes, str, or dicts stored as JSON) and committed offsets."""

    def __init__(self, messages: Iterable[bytes | str | Mapping[str, Any]] = ()) -> None:
        self._messages: list[bytes] = [_encode(m) for m in messages]
        self._committed: dict[str, int] = {}
        self._changed = threading.Condition()

    def append(self, *messages: bytes | str | Mapping[str, Any]) -> None:
        """Add messages at the end (wakes readers waiting for them)."""
        with self._changed:
            self._messages.extend(_encode(m) for m in messages)
            self._changed.notify_all()

    def __len__(self) -> int:
        return len(self._messages)

    def committed(self, group: str) -> int:
        """The offset ``group`` resumes from (the number of messages it acknowledged in order)."""
        return self._committed.get(group, 0)

    def commit(self, group: str, offset: int) -> None:
        with self._changed:
            self._committed[group] = max(self._committed.get(group, 0), offset)

    def fetch(self, offset: int, max_records: int, timeout: float) -> list[tuple[int, bytes]]:
        with self._changed:
            self._changed.wait_for(lambda: len(self._messages) > offset, timeout=timeout)
            end = min(len(self._messages), offset + max_records)
            return [(index, self._messages[index]) for index in range(offset, end)]


class MemorySource(BaseSource):
    """Consume a :class:`MemoryLog` as consumer group ``group`` (at-least-once, like Kafka)."""

    name: ClassVar[str] = "memory"

    def __init__(self, log: MemoryLog, *, group: str = "default", **options: Any) -> None:
        super().__init__(**options)
        self.log = log
        self.group = group
        self._next = log.committed(group)

    @property
    def resource(self) -> str:
        return f"memory log, group {self.group!r}"

    def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
        taken = self.log.fetch(self._next, max_records, timeout)
        if taken:
            self._next = taken[-1][0] + 1
        return [RawMessage(payload, {"offset": index}) for index, payload in taken]

    def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
        if messages:
            self.log.commit(self.group, max(m.position["offset"] for m in messages) + 1)

    def order_key(self, position: Mapping[str, Any]) -> tuple[str, Any] | None:
        return "0", int(position["offset"])
