"""A burst of 10,000 QoS 1 messages against Mosquitto's default limits (20 in flight, 1,000 queued).

The source announces its buffer as the MQTT 5 Receive Maximum, so the broker sends the whole
burst instead of queueing (and dropping) what does not fit in its 20-message window. With
``qos=0`` the same burst is read exactly once when it fits the buffer, and what does not fit is
counted in ``dropped``: read + dropped = sent, nothing twice.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from sygnify.streams.base import BaseSource
from sygnify.streams.mqtt import MqttSource
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


def test_burst_of_10000_messages_at_qos0_is_read_exactly_once_when_it_fits(mqtt_backend: Backend) -> None:
    source = mqtt_backend.open(consumer=f"qos0-{uuid.uuid4().hex[:6]}", qos=0, max_unacked_batches=1)
    assert isinstance(source, MqttSource)
    try:
        mqtt_backend.produce([json.dumps({"id": i, "x": float(i)}).encode() for i in range(BURST)])
        ids = _drain(source, BURST)
        extra = source.read(max_records=500, timeout=0.5)
    finally:
        source.close()
    assert extra is None
    assert sorted(ids) == list(range(BURST))
    assert source.dropped == 0


def test_at_qos0_what_does_not_fit_the_buffer_is_counted_as_dropped(mqtt_backend: Backend) -> None:
    buffered = 500
    source = mqtt_backend.open(consumer=f"qos0-full-{uuid.uuid4().hex[:6]}", qos=0, max_buffered=buffered)
    assert isinstance(source, MqttSource)
    try:
        # nobody reads while the burst comes: the buffer fills and the rest is dropped, counted
        mqtt_backend.produce([json.dumps({"id": i, "x": float(i)}).encode() for i in range(BURST)])
        deadline = time.monotonic() + 20
        while source.dropped < BURST - buffered and time.monotonic() < deadline:
            time.sleep(0.01)
        ids = _drain(source, buffered, deadline_s=10)
        extra = source.read(max_records=500, timeout=0.5)
    finally:
        source.close()
    assert extra is None
    assert len(ids) == len(set(ids)) == buffered
    assert source.dropped == BURST - buffered  # sent = read + dropped: Mosquitto dropped none
