"""Windows on live servers: no stall, close on idleness, exactly-once results across SIGKILLs.

- Without a checkpoint, windowed streams keep their batches unacknowledged until the windows
  holding them close (at-least-once) but no longer stall on ``max_unacked_batches``: a backlog
  of many batches goes through with default options.
- ``close_after=`` closes a window that gets no more events, on the clock: the last window of a
  stream whose traffic stops is emitted without an ``idle_timeout``.
- With ``checkpoint=`` and a dataset ``sink=``, a worker SIGKILLed at random points while
  events arrive live, then restarted, leaves every window's aggregate in the sink exactly once
  (Kafka, Redis, NATS: their positions let a restart skip what the state already holds; MQTT:
  the session tokens of records saved but not yet acknowledged, which a redelivery carries).
- The same with a Redis source and each exactly-once sink of a service (a Redis stream, a
  Kafka topic, a JetStream subject, a retained MQTT topic): every window's result once.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sygnify.ml.realtime import RealTimeML
from sygnify.processing import Aggregate
from sygnify.streams.windows import Tumbling
from tests.services import require
from tests.streams.backends import NATS_URL, REDIS_URL, Backend, MqttRecorder, port_open
from tests.streams.window_worker import SCHEMA, WINDOW, run

#: SIGKILL points per source (SYGNIFY_KILL_POINTS changes it).
KILL_POINTS = int(os.environ.get("SYGNIFY_KILL_POINTS", "100"))
RATE = 300  # events per second while the workers are killed and restarted


def event(i: int) -> bytes:
    return json.dumps({"id": i, "k": i % 3, "ts": i * 0.01}).encode()


def counting_model() -> RealTimeML:
    ml = RealTimeML()
    ml.register("n", backend="callable", fn=lambda X: X[:, 0], features=["n"])
    return ml


def expected_windows(total: int) -> Counter[tuple[int, float, int, int]]:
    groups: dict[tuple[int, float], list[int]] = {}
    for i in range(total):
        groups.setdefault((i % 3, (i * 0.01 // WINDOW) * WINDOW), []).append(i)
    return Counter((k, start, len(ids), sum(ids)) for (k, start), ids in groups.items())


def held(backend: Backend) -> dict[str, Any]:
    """Source options for batches held by open windows: NATS's default ``ack_wait`` (30 s, the
    test backend shortens it), or the held messages are redelivered while their window is open."""
    return backend.source_options(ack_wait=30.0)


def test_a_backlog_of_many_batches_goes_through_windows_with_default_options(backend: Backend) -> None:
    total = 3000
    source = backend.open(schema=SCHEMA, **held(backend))  # MQTT: only known sessions get messages
    backend.produce([event(i) for i in range(total)], partition=0)
    ml = counting_model()
    with source:
        stream = ml.stream(
            source,
            model="n",
            mode="aggregation",
            window=Tumbling(WINDOW),
            time="ts",
            aggregate=Aggregate(by="k", n=("id", "count"), total=("id", "sum")),
            max_records=50,  # 60 batches, 15x max_unacked_batches=4
            close_after=1.0,
        )
        rows: list[dict[str, Any]] = []
        guard = threading.Timer(60, stream.stop)
        guard.start()
        for table in stream:
            rows += table.to_pylist()
            if sum(r["n"] for r in rows) >= total:
                stream.stop()
        guard.cancel()
    got = Counter((r["k"], r["window_start"], r["n"], r["total"]) for r in rows)
    assert got == expected_windows(total)


def test_the_watermark_follows_the_slowest_partition(backend: Backend) -> None:
    """Kafka: events alternate between two partitions, which a consumer reads unevenly from a
    backlog; with one watermark for both, the lagging partition's events would be late."""
    total = 3000
    source = backend.open(schema=SCHEMA, **held(backend))
    backend.produce([event(i) for i in range(total)])  # Kafka: partition i % 2
    with source:
        stream = counting_model().stream(
            source,
            model="n",
            mode="aggregation",
            window=Tumbling(WINDOW),
            time="ts",
            aggregate=Aggregate(by="k", n=("id", "count"), total=("id", "sum")),
            max_records=50,
            close_after=1.0,
        )
        guard = threading.Timer(60, stream.stop)
        guard.start()
        rows: list[dict[str, Any]] = []
        for table in stream:
            rows += table.to_pylist()
            if sum(r["n"] for r in rows) >= total:
                stream.stop()
        guard.cancel()
    assert stream.late_rows == 0
    assert Counter((r["k"], r["window_start"], r["n"], r["total"]) for r in rows) == expected_windows(total)


def test_one_window_can_hold_more_messages_than_jetstreams_default_pending_limit(backend: Backend) -> None:
    total = 2500  # JetStream stops delivering at 1,000 unacknowledged messages by default
    source = backend.open(schema=SCHEMA, **held(backend))
    backend.produce([event(i) for i in range(total)], partition=0)
    with source:
        stream = counting_model().stream(
            source,
            model="n",
            mode="aggregation",
            window=Tumbling(3600),  # one window per key holds everything until close_after
            time="ts",
            aggregate=Aggregate(by="k", n=("id", "count")),
            max_records=100,
            close_after=1.0,
        )
        guard = threading.Timer(60, stream.stop)
        guard.start()
        rows: list[dict[str, Any]] = []
        for table in stream:
            rows += table.to_pylist()
            if sum(r["n"] for r in rows) >= total:
                stream.stop()
        guard.cancel()
    assert sorted((r["k"], r["n"]) for r in rows) == [(0, 834), (1, 833), (2, 833)]


def test_close_after_emits_the_last_window_when_events_stop(backend: Backend) -> None:
    source = backend.open(schema=SCHEMA, **held(backend))
    ml = counting_model()
    emitted: list[tuple[float, list[dict[str, Any]]]] = []
    produced_at: list[float] = []

    def produce() -> None:
        for chunk in range(4):  # well within close_after: the window stays open while events come
            backend.produce([event(i) for i in range(chunk * 25, chunk * 25 + 25)], partition=0)
            time.sleep(0.1)
        produced_at.append(time.monotonic())

    threading.Thread(target=produce).start()
    with source:
        stream = ml.stream(
            source,
            model="n",
            mode="aggregation",
            window=Tumbling(WINDOW),
            time="ts",
            aggregate=Aggregate(by="k", n=("id", "count")),
            close_after=1.5,
            poll_timeout=0.05,
        )
        guard = threading.Timer(30, stream.stop)
        guard.start()
        for table in stream:
            emitted.append((time.monotonic(), table.to_pylist()))
            if sum(r["n"] for _, batch in emitted for r in batch) >= 100:
                stream.stop()
        guard.cancel()
    rows = [r for _, batch in emitted for r in batch]
    # ts 0..0.99: one 5 s window per key, which no later event closes: close_after did, once
    assert sorted((r["k"], r["window_start"], r["n"]) for r in rows) == [
        (0, 0.0, 34),
        (1, 0.0, 33),
        (2, 0.0, 33),
    ]
    waited = emitted[-1][0] - produced_at[0]
    assert waited < 1.5 + 0.5, f"the idle window closed {waited:.2f} s after the last event"


def produce_live(backend: Backend, total: int, stop: threading.Event) -> None:
    chunk = RATE // 4
    for start in range(0, total, chunk):
        if stop.is_set():
            return
        began = time.monotonic()
        backend.produce([event(i) for i in range(start, min(total, start + chunk))], partition=0)
        time.sleep(max(0.0, 0.25 - (time.monotonic() - began)))


def results(out: Path) -> Counter[tuple[int, float, int, int]]:
    table = pq.read_table(out / "results")
    return Counter(
        (r["k"], r["window_start"], r["n"], r["total"])
        for r in table.select(["k", "window_start", "n", "total"]).to_pylist()
    )


def test_sigkill_at_random_points_leaves_every_window_in_the_sink_exactly_once(
    backend: Backend, tmp_path: Path
) -> None:
    spec = {"kind": backend.kind, "name": backend.name, "bootstrap": backend.bootstrap, "idle": 2.0}
    total = kill_and_restart(backend, spec, tmp_path)
    got, want = results(tmp_path), expected_windows(total)
    # MQTT too: a redelivered message keeps its packet identifier, which the state holds as a token
    assert got == want, f"{sum((got - want).values())} extra and {sum((want - got).values())} missing results"


def written(sink: str, tmp_path: Path) -> Counter[tuple[int, float, int, int]]:
    """The windows' results a worker wrote to ``sink`` (``"dataset"``, ``"delta"``, ``"connector"``)."""
    if sink == "delta":
        from deltalake import DeltaTable

        frame = pl.from_arrow(DeltaTable(str(tmp_path / "delta")).to_pyarrow_table())
    elif sink == "connector":
        from sygnify.connectors.local import LocalConfig, LocalConnector

        frame = LocalConnector(LocalConfig(root=str(tmp_path))).scan("written/").collect()
    else:
        return results(tmp_path)
    assert isinstance(frame, pl.DataFrame)
    return Counter(frame.select("k", "window_start", "n", "total").iter_rows())


@pytest.mark.parametrize(
    ("engine", "sink"),
    [
        ("handler", "dataset"),  # LargeDataHandler.process on a stream source: the same runtime
        ("handler", "delta"),  # one Delta commit per result, with an application transaction
        ("ml", "connector"),  # write(..., write_id=label) through a connector
    ],
)
def test_sigkill_at_random_points_leaves_every_window_once_in_each_kind_of_sink(
    engine: str, sink: str, tmp_path: Path
) -> None:
    require(port_open(6379), "redis on 127.0.0.1:6379")
    backend = Backend("redis")
    backend.prepare()
    spec = {"kind": "redis", "name": backend.name, "idle": 2.0, "sink": sink, "engine": engine}
    try:
        total = kill_and_restart(backend, spec, tmp_path)
    finally:
        backend.cleanup()
    got, want = written(sink, tmp_path), expected_windows(total)
    assert got == want, f"{sum((got - want).values())} extra and {sum((want - got).values())} missing results"


def test_sigkill_at_random_points_leaves_every_window_in_a_redis_stream_sink_exactly_once(
    tmp_path: Path,
) -> None:
    import redis

    require(port_open(6379), "redis on 127.0.0.1:6379")
    backend = Backend("redis")
    backend.prepare()
    spec = {"kind": "redis", "name": backend.name, "idle": 2.0, "sink": "redis"}
    client = redis.Redis.from_url(REDIS_URL)
    try:
        total = kill_and_restart(backend, spec, tmp_path)
        entries: Any = client.xrange(f"{backend.name}-results")
        rows = [json.loads(fields[b"data"]) for _, fields in entries]
    finally:
        guards = client.keys(f"{backend.name}-results:sygnify-label:*")
        client.delete(f"{backend.name}-results", *guards)
        backend.cleanup()
    got = Counter((r["k"], r["window_start"], r["n"], r["total"]) for r in rows)
    want = expected_windows(total)
    assert got == want, f"{sum((got - want).values())} extra and {sum((want - got).values())} missing results"


def test_sigkill_at_random_points_leaves_every_window_in_a_kafka_topic_sink_exactly_once(
    kafka_bootstrap: str | None, tmp_path: Path
) -> None:
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    require(kafka_bootstrap is not None, "the tansu Kafka broker could not start")
    assert kafka_bootstrap is not None
    backend = Backend("kafka", bootstrap=kafka_bootstrap)
    backend.prepare()
    results_topic = f"{backend.name}-results"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(results_topic, num_partitions=2)])[results_topic].result(30)
    spec = {"kind": "kafka", "name": backend.name, "bootstrap": kafka_bootstrap, "idle": 2.0, "sink": "kafka"}
    total = kill_and_restart(backend, spec, tmp_path)
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": "results-reader",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(results_topic, p, 0) for p in range(2)])
    rows, at_end = [], 0
    while at_end < 2:
        message = consumer.poll(10)
        assert message is not None, "the results topic did not reach its end"
        error = message.error()
        if error is not None:
            assert error.code() == KafkaError._PARTITION_EOF
            at_end += 1
            continue
        rows.append(json.loads(message.value() or b""))
    consumer.close()
    got = Counter((r["k"], r["window_start"], r["n"], r["total"]) for r in rows)
    want = expected_windows(total)
    assert got == want, f"{sum((got - want).values())} extra and {sum((want - got).values())} missing results"


def test_sigkill_at_random_points_leaves_every_window_in_a_nats_subject_sink_exactly_once(
    tmp_path: Path,
) -> None:
    import asyncio

    import nats

    require(port_open(4222), "nats on 127.0.0.1:4222")
    backend = Backend("nats")
    backend.prepare()
    results = f"{backend.name}-results"

    async def create() -> None:
        nc = await nats.connect(NATS_URL)
        # a short duplicate window: the sink's own check, not JetStream's, must prevent repeats
        await nc.jetstream().add_stream(name=results, subjects=[f"{results}.>"], duplicate_window=0.1)
        await nc.close()

    async def read_and_delete() -> list[dict[str, Any]]:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        rows: list[dict[str, Any]] = []
        info = await js.stream_info(results)
        for seq in range(1, info.state.last_seq + 1):
            message = await js.get_msg(results, seq)
            rows += [json.loads(line) for line in (message.data or b"").splitlines()]
        await js.delete_stream(results)
        await nc.close()
        return rows

    asyncio.run(create())
    spec = {"kind": "nats", "name": backend.name, "idle": 2.0, "sink": "nats"}
    try:
        total = kill_and_restart(backend, spec, tmp_path)
    finally:
        rows = asyncio.run(read_and_delete())
        backend.cleanup()
    got = Counter((r["k"], r["window_start"], r["n"], r["total"]) for r in rows)
    want = expected_windows(total)
    assert got == want, f"{sum((got - want).values())} extra and {sum((want - got).values())} missing results"


def test_sigkill_at_random_points_leaves_every_window_in_an_mqtt_topic_sink_exactly_once(
    tmp_path: Path,
) -> None:
    require(port_open(6379), "redis on 127.0.0.1:6379")
    require(port_open(1883), "mosquitto on 127.0.0.1:1883")
    backend = Backend("redis")
    backend.prepare()
    # MQTT keeps only the last result (retained): record every message while the workers run
    recorder = MqttRecorder(f"{backend.name}-results/out")
    spec = {"kind": "redis", "name": backend.name, "idle": 2.0, "sink": "mqtt"}
    try:
        total = kill_and_restart(backend, spec, tmp_path)
        recorder.barrier()
        messages = list(recorder.messages)
    finally:
        recorder.delete_retained()
        recorder.stop()
        backend.cleanup()
    labels = Counter(label for label, _, _ in messages)
    assert all(label is not None for label in labels), "every result carries its label"
    assert not any(retained for _, retained, _ in messages), "the recorder came first: all live"
    repeated = {label: n for label, n in labels.items() if n > 1}
    assert not repeated, f"results published more than once: {repeated}"
    got = Counter((r["k"], r["window_start"], r["n"], r["total"]) for _, _, rows in messages for r in rows)
    want = expected_windows(total)
    assert got == want, f"{sum((got - want).values())} extra and {sum((want - got).values())} missing results"


def kill_and_restart(backend: Backend, spec: dict[str, Any], tmp_path: Path) -> int:
    """Run the worker while events arrive live, SIGKILL it at ``KILL_POINTS`` random points and
    restart it each time, then let a last run finish; returns the number of events produced."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.streams.window_worker"])
    backend.open(consumer="worker", schema=SCHEMA).close()  # the MQTT session exists before events
    rng = random.Random(14)
    total = int(RATE * KILL_POINTS * 0.3) + RATE
    stop = threading.Event()
    producer = threading.Thread(target=produce_live, args=(backend, total, stop))
    producer.start()
    kills = 0
    try:
        while producer.is_alive() or kills < KILL_POINTS:
            worker = context.Process(target=run, args=(spec, str(tmp_path)))
            worker.start()
            ready = tmp_path / "ready.marker"
            deadline = time.monotonic() + 30
            while not ready.exists() and time.monotonic() < deadline and worker.is_alive():
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.5))
            if not worker.is_alive():
                break
            worker.kill()  # SIGKILL
            worker.join()
            ready.unlink(missing_ok=True)
            kills += 1
            if kills >= KILL_POINTS and not producer.is_alive():
                break
    finally:
        stop.set()
        producer.join()
    final = context.Process(target=run, args=(spec, str(tmp_path)))
    final.start()
    final.join(120)
    assert final.exitcode == 0, f"the last run ended with {final.exitcode}"
    assert (tmp_path / "done.marker").exists()
    assert kills >= KILL_POINTS
    return total


def test_a_checkpointed_stream_acknowledges_at_each_save_not_when_windows_close(tmp_path: Path) -> None:
    from sygnify.streams.memory import MemoryLog, MemorySource

    log = MemoryLog([event(i) for i in range(400)])
    ml = counting_model()
    with MemorySource(log, schema=SCHEMA) as source:
        stream = ml.stream(
            source,
            model="n",
            mode="aggregation",
            window=Tumbling(3600),  # nothing closes on event time
            time="ts",
            aggregate=Aggregate(by="k", n=("id", "count")),
            checkpoint=str(tmp_path / "state.json"),
            checkpoint_interval=0,
            max_records=40,
            idle_timeout=0.5,
        )
        out = pa.concat_tables(list(stream))
    assert log.committed("default") == 400
    assert sorted(out.column("n").to_pylist()) == [133, 133, 134]


def test_a_redelivery_in_the_same_batch_as_its_first_copy_is_counted_once(tmp_path: Path) -> None:
    """JetStream can hand over a message and its redelivery in one fetch (a fetch that timed
    out still delivers the first copy, ``ack_wait`` later the second comes): the checkpoint
    learns positions per batch, so the batch itself must not count the repeat (CI, stop 25)."""
    from sygnify.streams.memory import MemoryLog, MemorySource

    class Redelivering(MemorySource):
        in_order = False  # as NATS: redeliveries come late

        def _fetch(self, max_records: int, timeout: float) -> list[Any]:
            messages = super()._fetch(max_records, timeout)
            return messages + messages[:1]  # the batch's first message once more, same position

    total = 400
    log = MemoryLog([event(i) for i in range(total)])
    with Redelivering(log, schema=SCHEMA) as source:
        stream = counting_model().stream(
            source,
            model="n",
            mode="aggregation",
            window=Tumbling(WINDOW),
            time="ts",
            aggregate=Aggregate(by="k", n=("id", "count"), total=("id", "sum")),
            checkpoint=str(tmp_path / "state.json"),
            max_records=30,
            idle_timeout=0.5,
        )
        rows = [r for table in stream for r in table.to_pylist()]
    assert Counter((r["k"], r["window_start"], r["n"], r["total"]) for r in rows) == expected_windows(total)
