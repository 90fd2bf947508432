"""Every stream source against its real server (tansu for Kafka): the same contract for all."""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pytest

from sygnify.streams import SourceBatch, StreamSource
from sygnify.streams.base import BaseSource
from tests.streams.backends import Backend

SCHEMA = pa.schema([("id", pa.int64()), ("temperature", pa.float64())])


def payload(i: int) -> bytes:
    return json.dumps({"id": i, "temperature": 20.0 + i / 10}).encode()


def read_until(source: BaseSource, count: int, *, timeout: float = 30, ack: bool = True) -> list[SourceBatch]:
    """Read batches until ``count`` messages (rows + dead letters) arrived."""
    batches: list[SourceBatch] = []
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < count and time.monotonic() < deadline:
        batch = source.read(max_records=50, timeout=0.5)
        if batch is None:
            continue
        batches.append(batch)
        seen += batch.batch.num_rows + len(batch.dead_letters)
        if ack:
            batch.ack()
    return batches


def ids(batches: list[SourceBatch]) -> list[int]:
    return [i for b in batches for i in b.batch.column("id").to_pylist()]


def test_source_satisfies_the_protocol(backend: Backend) -> None:
    source = backend.open()
    try:
        assert isinstance(source, StreamSource)
        assert "***" not in repr(source)
        assert source.read(max_records=10, timeout=0.2) is None  # nothing produced yet
    finally:
        source.close()


def test_round_trip_with_schema_and_dead_letters(backend: Backend) -> None:
    source = backend.open(schema=SCHEMA)
    try:
        backend.produce([payload(i) for i in range(40)] + [b"{broken", b'{"id": "x", "temperature": 1}'])
        batches = read_until(source, 42)
    finally:
        source.close()
    assert sorted(ids(batches)) == list(range(40))
    assert all(b.batch.schema == SCHEMA for b in batches)
    reasons = [d["reason"] for b in batches for d in b.dead_letters]
    assert len(reasons) == 2
    assert any("JSONDecodeError" in r for r in reasons)
    assert any("does not match schema" in r for r in reasons)
    dead = backend.dead_letters(2)
    assert sorted(p for p, _ in dead) == sorted([b"{broken", b'{"id": "x", "temperature": 1}'])
    assert all(reason for _, reason in dead)


def test_acknowledged_messages_are_not_redelivered(backend: Backend) -> None:
    source = backend.open(schema=SCHEMA)
    try:
        backend.produce([payload(i) for i in range(30)])
        assert sorted(ids(read_until(source, 30))) == list(range(30))
    finally:
        source.close()
    backend.produce([payload(i) for i in range(30, 35)])
    again = backend.open(schema=SCHEMA)
    try:
        assert sorted(ids(read_until(again, 5))) == list(range(30, 35))
        assert again.read(max_records=50, timeout=1.5) is None
    finally:
        again.close()


def test_unacknowledged_messages_are_redelivered_after_restart(backend: Backend) -> None:
    source = backend.open(schema=SCHEMA)
    try:
        backend.produce([payload(i) for i in range(20)])
        first = read_until(source, 20, ack=False)
    finally:
        source.close()  # nothing acknowledged
    assert sorted(ids(first)) == list(range(20))
    again = backend.open(schema=SCHEMA)
    try:
        redelivered = read_until(again, 20)
    finally:
        again.close()
    assert sorted(ids(redelivered)) == list(range(20))


def test_backpressure_limits_unacknowledged_batches(backend: Backend) -> None:
    source = backend.open(schema=SCHEMA, max_unacked_batches=1)
    try:
        backend.produce([payload(i) for i in range(10)])
        first = read_until(source, 1, ack=False)[0]
        assert source.read(max_records=50, timeout=0.3) is None  # full: waits for an ack
        first.ack()
        first.ack()  # idempotent
        rest = read_until(source, 10 - first.batch.num_rows)
    finally:
        source.close()
    assert sorted(ids([first, *rest])) == list(range(10))


def test_iteration_stops_on_close(backend: Backend) -> None:
    source = backend.open(schema=SCHEMA, batch_size=4, poll_timeout=0.3)
    backend.produce([payload(i) for i in range(8)])
    seen: list[int] = []
    for batch in source:
        seen += batch.batch.column("id").to_pylist()
        batch.ack()
        if len(seen) >= 8:
            source.close()
    assert sorted(seen) == list(range(8))
    assert source.read() is None


@pytest.mark.parametrize("kind", ["redis"])
def test_pending_entries_of_a_dead_consumer_are_claimed(kind: str) -> None:
    from tests.services import require
    from tests.streams.backends import port_open

    require(port_open(6379), "redis server on 127.0.0.1:6379")
    backend = Backend(kind)
    try:
        dead = backend.open(consumer="dead", schema=SCHEMA)
        backend.produce([payload(i) for i in range(5)])
        assert sorted(ids(read_until(dead, 5, ack=False))) == list(range(5))
        dead.close()
        heir = backend.open(consumer="heir", schema=SCHEMA, claim_idle_ms=0)
        try:
            assert sorted(ids(read_until(heir, 5))) == list(range(5))
        finally:
            heir.close()
    finally:
        backend.cleanup()


def test_a_source_is_subscribed_when_it_is_returned(backend: Backend) -> None:
    """A message produced right after the constructor returns reaches a new consumer
    (MQTT once lost it: the source was returned before the broker's SUBACK)."""
    for attempt in range(5):
        source = backend.open(consumer=f"fresh{attempt}", schema=SCHEMA)
        try:
            backend.produce([payload(attempt)])
            got = read_until(source, 1, timeout=10)
        finally:
            source.close()
        assert attempt in ids(got), f"attempt {attempt}: the message produced after open was lost"
