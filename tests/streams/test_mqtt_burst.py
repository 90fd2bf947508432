"""A burst of 10,000 QoS 1 messages against Mosquitto's default limits (20 in flight, 1,000 queued).

The source announces its buffer as the MQTT 5 Receive Maximum, so the broker sends the whole
burst instead of queueing (and dropping) what does not fit in its 20-message window.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from sygnify.streams.base import BaseSource
from tests.services import require
from tests.streams.backends import Backend, port_open

BURST = 10_000


@pytest.fixture
def mqtt_backend() -> Backend:
    require(port_open(1883), "mosquitto on 127.0.0.1:1883")
    return Backend("mqtt")


def _drain(source: BaseSource, expected: int, deadline_s: float = 60.0, *, ack: bool = True) -> list[int]:
    ids: list[int] = []
    deadline = time.monotonic() + deadline_s
    while len(ids) < expected and time.monotonic() < deadline:
        batch = source.read(max_records=500, timeout=0.5)
        if batch is None:
            continue
        time.sleep(0.05)  # a slow consumer: the burst must wait in flight, not be dropped
        ids += batch.batch.column("id").to_pylist()
        if ack:
            batch.ack()
    return ids


def test_burst_of_10000_qos1_messages_is_read_exactly_once(mqtt_backend: Backend) -> None:
    source = mqtt_backend.open(consumer=f"burst-{uuid.uuid4().hex[:6]}", max_unacked_batches=1)
    try:
        mqtt_backend.produce([json.dumps({"id": i, "x": float(i)}).encode() for i in range(BURST)])
        ids = _drain(source, BURST)
        # nothing more arrives: no duplicate after the burst
        extra = source.read(max_records=500, timeout=1.0)
    finally:
        source.close()
    assert extra is None
    assert len(ids) == BURST
    assert sorted(ids) == list(range(BURST))


def test_unacknowledged_messages_come_back_after_a_restart(mqtt_backend: Backend) -> None:
    consumer = f"restart-{uuid.uuid4().hex[:6]}"
    source = mqtt_backend.open(consumer=consumer)
    mqtt_backend.produce([json.dumps({"id": i}).encode() for i in range(50)])
    first = _drain(source, 50, deadline_s=20, ack=False)
    source.close()  # read, never acknowledged
    assert sorted(first) == list(range(50))
    again = mqtt_backend.open(consumer=consumer)
    try:
        redelivered = _drain(again, 50, deadline_s=20)
    finally:
        again.close()
    assert sorted(redelivered) == list(range(50))
