"""The conformance suite every stream source passes: sygnify's own, and a third party's.

A source is tested against its real server through a small :class:`SourceHarness` the
plugin author writes: ``open(consumer=..., **options)`` returns a new source on a stream
unique to the test, ``produce(payloads)`` publishes raw messages to it, and optionally
``dead_letters(expected)`` reads back the ``(payload, reason)`` pairs of the source's native
dead-letter target. The kit produces JSON payloads and passes :class:`~sygnify.streams.BaseSource`
options (``schema``, ``max_unacked_batches``, ``batch_size``, ``poll_timeout``).

In pytest, subclass :class:`SourceConformance` and provide a ``harness`` fixture::

    import pytest
    from sygnify.testing.sources import SourceConformance

    class TestQueueConformance(SourceConformance):
        @pytest.fixture
        def harness(self):
            with QueueHarness() as harness:  # a fresh stream per test
                yield harness

Without pytest, :func:`check_stream_source` runs every check. Here against a source kept in
memory (a real plugin talks to its server)::

    >>> from collections.abc import Sequence
    >>> from typing import Any
    >>> from sygnify.streams import BaseSource, RawMessage
    >>> class Broker:                            # one in-memory "server" with a consumer group
    ...     def __init__(self) -> None:
    ...         self.log: list[bytes] = []
    ...         self.committed = 0
    >>> class MemorySource(BaseSource):
    ...     name = "memory"
    ...     def __init__(self, broker: Broker, **options: Any) -> None:
    ...         super().__init__(**options)
    ...         self.broker, self.position = broker, broker.committed
    ...     def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
    ...         taken = self.broker.log[self.position : self.position + max_records]
    ...         start, self.position = self.position, self.position + len(taken)
    ...         return [RawMessage(p, {"offset": start + i}) for i, p in enumerate(taken)]
    ...     def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
    ...         last = max(m.position["offset"] for m in messages) + 1
    ...         self.broker.committed = max(self.broker.committed, last)
    >>> class MemoryHarness:
    ...     def __init__(self) -> None:
    ...         self.broker = Broker()
    ...     def open(self, consumer: str = "c1", **options: Any) -> MemorySource:
    ...         return MemorySource(self.broker, **options)
    ...     def produce(self, payloads: Sequence[bytes]) -> None:
    ...         self.broker.log.extend(payloads)
    >>> check_stream_source(MemoryHarness, timeout=5)
    ['satisfies_the_protocol', 'round_trip_with_schema_and_dead_letters', ...]

The kit needs nothing beyond sygnify (pytest only collects the class).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from sygnify.streams import SourceBatch, StreamSource
from sygnify.testing._checks import checks_of, expect

__all__ = [
    "SCHEMA",
    "SourceConformance",
    "SourceHarness",
    "check_stream_source",
    "ids",
    "payload",
    "read_until",
]

#: the schema of the records the kit produces
SCHEMA = pa.schema([("id", pa.int64()), ("temperature", pa.float64())])


@runtime_checkable
class SourceHarness(Protocol):
    """What the plugin author implements to put a source under the kit (one stream per test).

    ``open`` returns a new, subscribed source reading the harness's stream; ``consumer`` names
    the consumer (a group member, a client id): a name not used before is a consumer that has
    never connected, the same name resumes from what was acknowledged. A harness may also
    have ``dead_letters(expected: int) -> list[tuple[bytes, str]]``, the ``(payload, reason)``
    pairs in the source's native dead-letter target, waiting until ``expected`` arrived.
    """

    def open(self, consumer: str = "c1", **options: Any) -> StreamSource:
        """A new source on the harness's stream, built with ``options``."""
        ...

    def produce(self, payloads: Sequence[bytes]) -> None:
        """Publish ``payloads`` (raw bytes) to the harness's stream."""
        ...


def payload(i: int) -> bytes:
    """The JSON message of record ``i`` (fits :data:`SCHEMA`).

    >>> payload(3)
    b'{"id": 3, "temperature": 20.3}'
    """
    return json.dumps({"id": i, "temperature": 20.0 + i / 10}).encode()


def read_until(source: StreamSource, count: int, *, timeout: float, ack: bool = True) -> list[SourceBatch]:
    """Read until ``count`` messages (rows + dead letters) arrived or ``timeout`` s passed."""
    batches: list[SourceBatch] = []
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < count and time.monotonic() < deadline:
        batch = source.read(max_records=50, timeout=0.5)
        if batch is None:
            continue
        expect(isinstance(batch, SourceBatch), f"read() returned {type(batch).__name__}, not a SourceBatch")
        expect(
            isinstance(batch.batch, pa.RecordBatch),
            f"SourceBatch.batch is {type(batch.batch).__name__}, not a pyarrow.RecordBatch",
        )
        expect(batch.batch.num_rows <= 50, f"read(max_records=50) returned {batch.batch.num_rows} rows")
        batches.append(batch)
        seen += batch.batch.num_rows + len(batch.dead_letters)
        if ack:
            batch.ack()
    return batches


def ids(batches: Sequence[SourceBatch]) -> list[int]:
    """The ``id`` of every record in ``batches``, in order of arrival."""
    return [i for b in batches for i in b.batch.column("id").to_pylist()]


class SourceConformance:
    """Behaviour every stream source must show (see the module docstring for ``harness``).

    ``timeout`` bounds each wait for messages, in seconds.
    """

    timeout: float = 30.0

    def test_satisfies_the_protocol(self, harness: SourceHarness) -> None:
        source = harness.open()
        try:
            expect(isinstance(source, StreamSource), f"{type(source).__name__} is not a StreamSource")
            nothing = source.read(max_records=10, timeout=0.2)
            expect(nothing is None, f"read() with nothing produced returned {nothing!r}, not None")
        finally:
            source.close()

    def test_round_trip_with_schema_and_dead_letters(self, harness: SourceHarness) -> None:
        source = harness.open(schema=SCHEMA)
        poison = [b"{broken", b'{"id": "x", "temperature": 1}']
        try:
            harness.produce([payload(i) for i in range(40)] + poison)
            batches = read_until(source, 42, timeout=self.timeout)
        finally:
            source.close()
        got = sorted(ids(batches))
        expect(got == list(range(40)), f"40 records produced, these ids came back: {got}")
        schemas = {str(b.batch.schema) for b in batches if b.batch.schema != SCHEMA}
        expect(not schemas, f"batches of a source opened with schema=SCHEMA had schemas {schemas}")
        letters = [d for b in batches for d in b.dead_letters]
        expect(len(letters) == 2, f"2 poison messages produced, {len(letters)} dead letters came back")
        expect(
            all(isinstance(d.get("reason"), str) and d["reason"] for d in letters),
            f"every dead letter carries a non-empty reason: {letters}",
        )
        reasons = [d["reason"] for d in letters]
        expect(any("JSONDecodeError" in r for r in reasons), f"no reason names the JSON error: {reasons}")
        expect(
            any("does not match schema" in r for r in reasons),
            f"no reason names the schema misfit: {reasons}",
        )
        native: Callable[[int], list[tuple[bytes, str]]] | None = getattr(harness, "dead_letters", None)
        if native is not None:
            dead = native(2)
            expect(
                sorted(p for p, _ in dead) == sorted(poison),
                f"the native dead-letter target holds {dead}, not the 2 poison messages",
            )
            expect(all(reason for _, reason in dead), f"a native dead letter has no reason: {dead}")

    def test_acknowledged_messages_are_not_redelivered(self, harness: SourceHarness) -> None:
        source = harness.open(schema=SCHEMA)
        try:
            harness.produce([payload(i) for i in range(30)])
            got = sorted(ids(read_until(source, 30, timeout=self.timeout)))
            expect(got == list(range(30)), f"30 records produced, these ids came back: {got}")
        finally:
            source.close()
        harness.produce([payload(i) for i in range(30, 35)])
        again = harness.open(schema=SCHEMA)
        try:
            got = sorted(ids(read_until(again, 5, timeout=self.timeout)))
            expect(got == list(range(30, 35)), f"after a restart, acked records came again or went: {got}")
            rest = again.read(max_records=50, timeout=1.5)
            expect(rest is None, f"acknowledged records were redelivered: {rest}")
        finally:
            again.close()

    def test_unacknowledged_messages_are_redelivered_after_restart(self, harness: SourceHarness) -> None:
        source = harness.open(schema=SCHEMA)
        try:
            harness.produce([payload(i) for i in range(20)])
            first = sorted(ids(read_until(source, 20, timeout=self.timeout, ack=False)))
        finally:
            source.close()  # nothing acknowledged
        expect(first == list(range(20)), f"20 records produced, these ids came back: {first}")
        again = harness.open(schema=SCHEMA)
        try:
            redelivered = sorted(ids(read_until(again, 20, timeout=self.timeout)))
        finally:
            again.close()
        expect(redelivered == list(range(20)), f"unacknowledged records not redelivered: got {redelivered}")

    def test_backpressure_limits_unacknowledged_batches(self, harness: SourceHarness) -> None:
        source = harness.open(schema=SCHEMA, max_unacked_batches=1)
        try:
            harness.produce([payload(i) for i in range(10)])
            got = read_until(source, 1, timeout=self.timeout, ack=False)
            expect(got, "no batch arrived")
            first = got[0]
            held = source.read(max_records=50, timeout=0.3)
            expect(held is None, "read() returned a batch while max_unacked_batches=1 batch was unacked")
            first.ack()
            first.ack()  # idempotent
            rest = read_until(source, 10 - first.batch.num_rows, timeout=self.timeout)
        finally:
            source.close()
        got_ids = sorted(ids([first, *rest]))
        expect(got_ids == list(range(10)), f"10 records produced, these ids came back: {got_ids}")

    def test_iteration_stops_on_close_and_close_is_idempotent(self, harness: SourceHarness) -> None:
        source = harness.open(schema=SCHEMA, batch_size=4, poll_timeout=0.3)
        harness.produce([payload(i) for i in range(8)])
        seen: list[int] = []
        deadline = time.monotonic() + self.timeout
        for batch in source:
            expect(batch.batch.num_rows <= 4, f"iteration with batch_size=4 gave {batch.batch.num_rows} rows")
            seen += batch.batch.column("id").to_pylist()
            batch.ack()
            if len(seen) >= 8 or time.monotonic() > deadline:
                source.close()
        expect(sorted(seen) == list(range(8)), f"8 records produced, iteration gave {sorted(seen)}")
        source.close()  # a second close does nothing
        after = source.read()
        expect(after is None, f"read() after close() returned {after!r}, not None")

    def test_a_source_is_subscribed_when_it_is_returned(self, harness: SourceHarness) -> None:
        """A message produced right after ``open`` returns reaches the new consumer."""
        for attempt in range(5):
            source = harness.open(consumer=f"fresh{attempt}", schema=SCHEMA)
            try:
                harness.produce([payload(attempt)])
                got = ids(read_until(source, 1, timeout=min(self.timeout, 10)))
            finally:
                source.close()
            expect(attempt in got, f"attempt {attempt}: the message produced right after open() was lost")


def check_stream_source(make_harness: Callable[[], SourceHarness], *, timeout: float = 30.0) -> list[str]:
    """Run every check of :class:`SourceConformance`, each on a fresh ``make_harness()``.

    Returns the names of the checks that ran; the first failing check raises AssertionError.
    """
    suite = SourceConformance()
    suite.timeout = timeout
    ran = []
    for name in checks_of(SourceConformance):
        getattr(suite, name)(make_harness())
        ran.append(name.removeprefix("test_"))
    return ran
