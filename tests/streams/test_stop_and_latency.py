"""Clean stop and latency of ``ml.stream`` on every real stream server (tansu Kafka, Redis, NATS, Mosquitto).

- ``source.close()`` or ``stream.stop()`` from another thread, or SIGTERM, ends the stream within
  1 s; a restart continues after the last acknowledged record (nothing lost, nothing acknowledged
  delivered again).
- An idle stream blocks in its reads: it burns almost no CPU.
- End-to-end latency (producer timestamp to the prediction callback) stays near ``max_latency``.
  The exact figures at 500 events/s, beside a raw consumer, are in benchmarks/bench_streams.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest

from sygnify.ml.realtime import RealTimeML
from sygnify.ml.stream import PredictionStream
from sygnify.streams.base import BaseSource, SourceBatch
from sygnify.testing.sources import SCHEMA, payload
from tests.streams.backends import MQTT_HOST, MQTT_PORT, NATS_URL, REDIS_URL, Backend

TOTAL = 200
LATENCY_SCHEMA = pa.schema([("id", pa.int64()), ("temperature", pa.float64()), ("ts", pa.float64())])


def model() -> RealTimeML:
    ml = RealTimeML()
    ml.register(
        "m", backend="callable", fn=lambda X: X[:, 0], features=["temperature"], extra_features="ignore"
    )
    return ml


def track_acks(source: BaseSource, acked: list[int]) -> None:
    """Record the ids of every batch the stream acknowledges (the real ack still runs)."""
    read = source.read

    def read_tracked(**kwargs: Any) -> SourceBatch | None:
        batch = read(**kwargs)
        if batch is not None:
            ids = batch.batch.column("id").to_pylist()
            ack = batch.ack

            def tracked() -> None:
                ack()
                acked.extend(ids)

            batch.ack = tracked
        return batch

    source.read = read_tracked  # type: ignore[method-assign]


def ids_of(tables: list[pa.Table]) -> list[int]:
    return [i for t in tables for i in t.column("id").to_pylist()]


def consume_until(backend: Backend, wanted: set[int], timeout: float = 60) -> list[int]:
    """A fresh run of the same consumer, until it saw every id of ``wanted``."""
    source = backend.open(schema=SCHEMA)
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    with source:
        stream = model().stream(source, model="m", max_records=20, max_latency=0.02)
        for table in stream:
            seen += table.column("id").to_pylist()
            if wanted <= set(seen) or time.monotonic() > deadline:
                stream.stop()
    return seen


def run_and_end(
    backend: Backend, end: Callable[[BaseSource, PredictionStream], None]
) -> tuple[list[int], list[int], float]:
    """Stream a backlog, call ``end`` from another thread midway; (seen, acked, seconds to end)."""
    source = backend.open(schema=SCHEMA)  # first: MQTT keeps messages only for known sessions
    backend.produce([payload(i) for i in range(TOTAL)])
    acked: list[int] = []
    track_acks(source, acked)
    stream = model().stream(source, model="m", max_records=10, max_latency=0.02)
    seen: list[int] = []
    ended_at: list[float] = []
    deadline = time.monotonic() + 30
    try:
        for table in stream:
            seen += table.column("id").to_pylist()
            if (len(seen) >= 50 or time.monotonic() > deadline) and not ended_at:
                ended_at.append(time.monotonic())
                threading.Thread(target=end, args=(source, stream)).start()
                time.sleep(0.05)  # the consumer is busy with this table while the stop comes
        returned = time.monotonic() - ended_at[0]
    finally:
        source.close()
    return seen, acked, returned


def test_close_from_another_thread_ends_the_stream_and_a_restart_resumes(backend: Backend) -> None:
    seen, acked, returned = run_and_end(backend, lambda source, _stream: source.close())
    assert returned < 1.0, f"the stream took {returned:.2f} s to end after close()"
    assert len(seen) < TOTAL, "close() came midway"
    assert set(acked) <= set(seen)
    rest = set(range(TOTAL)) - set(acked)
    again = consume_until(backend, rest)
    assert set(acked) | set(again) == set(range(TOTAL)), "nothing lost"
    assert not set(acked) & set(again), "nothing acknowledged is delivered again"
    assert max(Counter(again).values()) == 1


def test_stop_commits_what_was_processed_and_a_restart_continues_after_it(backend: Backend) -> None:
    seen, acked, returned = run_and_end(backend, lambda _source, stream: stream.stop())
    assert returned < 1.0, f"the stream took {returned:.2f} s to end after stop()"
    assert len(seen) < TOTAL
    assert sorted(acked) == sorted(seen), "everything yielded before the stop was acknowledged"
    again = consume_until(backend, set(range(TOTAL)) - set(seen))
    assert sorted(seen + again) == list(range(TOTAL)), "no loss, no duplicate"


def test_sigterm_handler_stops_the_stream(backend: Backend) -> None:
    source = backend.open(schema=SCHEMA)
    backend.produce([payload(i) for i in range(10)])
    stream = model().stream(source, model="m", max_latency=0.02)
    previous = signal.signal(signal.SIGTERM, lambda *_: stream.stop())
    seen: list[int] = []
    try:
        with source:
            for table in stream:
                seen += table.column("id").to_pylist()
                if len(seen) >= 10 and not stream.stopped:
                    sent = time.monotonic()
                    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
            returned = time.monotonic() - sent
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stream.stopped
    assert 0.3 <= returned < 1.3, f"the stream ended {returned - 0.3:.2f} s after SIGTERM"
    assert sorted(seen) == list(range(10))


def test_an_idle_stream_blocks_instead_of_spinning(backend: Backend) -> None:
    source = backend.open(schema=SCHEMA)
    stream = model().stream(source, model="m")
    worker = threading.Thread(target=lambda: [None for _ in stream])
    with source:
        worker.start()
        time.sleep(0.5)  # connected and idle
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(1.0)
        used = (time.process_time() - cpu) / (time.monotonic() - wall)
        stopped = time.monotonic()
        stream.stop()
        worker.join(5)
        assert not worker.is_alive()
        assert time.monotonic() - stopped < 1.0
    assert used < 0.2, f"an idle stream used {used:.2f} s of CPU per second"


# -- latency ---------------------------------------------------------------------------------------
RATE, SECONDS, MAX_LATENCY, SLACK = 200, 3.0, 0.05, 0.15


def event(i: int) -> bytes:
    return json.dumps({"id": i, "temperature": 20.0, "ts": time.time()}).encode()


def paced(send: Callable[[bytes], None], count: int, rate: float) -> None:
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(event(i))


def produce_live(backend: Backend, count: int, rate: float) -> None:
    """Produce ``count`` events at ``rate``/s, each stamped when it is sent."""
    if backend.kind == "kafka":
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": backend.bootstrap, "linger.ms": 0})

        def send_kafka(data: bytes) -> None:
            producer.produce(backend.name, data)
            producer.poll(0)

        paced(send_kafka, count, rate)
        producer.flush(30)
    elif backend.kind == "redis":
        import redis

        redis_client = redis.Redis.from_url(REDIS_URL)

        def send_redis(data: bytes) -> None:
            redis_client.xadd(backend.name, {"data": data})

        paced(send_redis, count, rate)
        redis_client.close()
    elif backend.kind == "nats":
        asyncio.run(_nats_live(backend, count, rate))
    else:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"live-{uuid.uuid4().hex[:8]}")
        client.connect(MQTT_HOST, MQTT_PORT)
        client.loop_start()
        infos: list[mqtt.MQTTMessageInfo] = []

        def send_mqtt(data: bytes) -> None:
            infos.append(client.publish(f"{backend.name}/data", data, qos=1))

        paced(send_mqtt, count, rate)
        for info in infos:
            info.wait_for_publish(timeout=30)
        client.loop_stop()
        client.disconnect()


async def _nats_live(backend: Backend, count: int, rate: float) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await nc.publish(f"{backend.name}.data", event(i))
    await nc.flush()
    await nc.close()


@pytest.fixture
def live_stream(backend: Backend) -> Iterator[tuple[Backend, BaseSource]]:
    source = backend.open(schema=LATENCY_SCHEMA)
    with source:
        yield backend, source


def test_end_to_end_latency_stays_near_max_latency(live_stream: tuple[Backend, BaseSource]) -> None:
    backend, source = live_stream
    ml = model()
    latencies: list[float] = []
    ml.on(
        "prediction", lambda table: latencies.extend(time.time() - t for t in table.column("ts").to_pylist())
    )
    stream = ml.stream(source, model="m", max_latency=MAX_LATENCY)
    count = int(RATE * SECONDS)
    worker = threading.Thread(target=lambda: [None for _ in stream])
    worker.start()
    try:
        time.sleep(0.5)  # the consumer is connected and waiting
        produce_live(backend, count, RATE)
        deadline = time.monotonic() + 10
        while len(latencies) < count and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stream.stop()
        worker.join(5)
    assert len(latencies) == count
    ordered = sorted(latencies)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    assert p99 <= MAX_LATENCY + SLACK, (
        f"p99 {p99 * 1000:.0f} ms, p50 {ordered[len(ordered) // 2] * 1000:.0f} ms"
    )


def test_an_ack_after_close_raises_and_the_batch_is_delivered_again(backend: Backend) -> None:
    from sygnify.errors import SourceClosedError

    source = backend.open(schema=SCHEMA)
    backend.produce([payload(i) for i in range(5)])
    batch = None
    deadline = time.monotonic() + 30
    while batch is None and time.monotonic() < deadline:
        batch = source.read(max_records=10, timeout=0.5)
    assert batch is not None
    ids = batch.batch.column("id").to_pylist()
    source.close()
    with pytest.raises(SourceClosedError, match="closed before this batch was acknowledged"):
        batch.ack()  # never "returned but lost": the caller knows it was not acknowledged
    again = consume_until(backend, set(range(5)))
    assert set(ids) <= set(again), "the batch whose ack was refused is delivered again"
