"""One small driver per stream service: create a unique topic, produce, open a source, read dead letters.

Used by the source tests and by the consumer subprocess of the crash test, so both talk to
the real servers the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sygnify.streams.base import BaseSource

REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


class MqttRecorder:
    """A subscriber recording every message of ``topic`` (retained or live) with its label.

    It deduplicates nothing: a result delivered twice is recorded twice. ``delete_retained()``
    removes the topic's retained message (an empty retained publish) when a test is done.
    """

    def __init__(self, topic: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.topic = topic
        #: (label, retained flag, rows) per message, in arrival order
        self.messages: list[tuple[str | None, bool, list[dict[str, Any]]]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"recorder-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        client.on_message = self._on_message
        client.on_subscribe = lambda *_args: subscribed.set()
        client.connect(MQTT_HOST, MQTT_PORT)
        client.subscribe(topic, qos=1)
        client.loop_start()
        assert subscribed.wait(10), "the recorder's subscription was not acknowledged"
        self._client = client

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        if not message.payload:
            return  # the deletion of a retained message
        label = dict(getattr(message.properties, "UserProperty", None) or []).get("sygnify-label")
        rows = [json.loads(line) for line in message.payload.decode().splitlines()]
        with self._lock:
            self.messages.append((label, bool(message.retain), rows))

    def labels(self) -> list[str | None]:
        with self._lock:
            return [label for label, _, _ in self.messages]

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` messages were recorded (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.labels()) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def barrier(self, timeout: float = 10.0) -> None:
        """Publish a marker (not retained) and wait for it: every result the broker took
        before has then been recorded too (a topic's messages arrive in order)."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        marker = f"barrier-{uuid.uuid4().hex[:8]}"
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.UserProperty = ("sygnify-label", marker)
        self._client.publish(self.topic, b"{}", qos=1, properties=properties).wait_for_publish(timeout)
        deadline = time.monotonic() + timeout
        while marker not in self.labels():
            assert time.monotonic() < deadline, f"the marker did not come back on {self.topic}"
            time.sleep(0.01)
        with self._lock:
            self.messages = [m for m in self.messages if m[0] != marker]

    def delete_retained(self) -> None:
        self._client.publish(self.topic, b"", qos=1, retain=True).wait_for_publish(timeout=10)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Backend:
    """A named stream (unique per test) on one service."""

    kind: str
    name: str = field(default_factory=lambda: f"sygnify-test-{uuid.uuid4().hex[:12]}")
    bootstrap: str | None = None  # kafka only

    @property
    def dead_name(self) -> str:
        return f"{self.name}-dead"

    # -- setup ---------------------------------------------------------------------------
    def prepare(self) -> None:
        if self.kind == "kafka":
            from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

            assert self.bootstrap is not None
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            futures = admin.create_topics(
                [NewTopic(self.name, num_partitions=2), NewTopic(self.dead_name, num_partitions=1)]
            )
            for future in futures.values():
                future.result(30)
        elif self.kind == "nats":
            asyncio.run(self._nats_prepare())

    async def _nats_prepare(self) -> None:
        import nats

        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await js.add_stream(name=self.name, subjects=[f"{self.name}.>"], max_age=600)
        await js.add_stream(name=self.dead_name, subjects=[f"{self.dead_name}.>"], max_age=600)
        await nc.close()

    def cleanup(self) -> None:
        if self.kind == "redis":
            import redis

            redis.Redis.from_url(REDIS_URL).delete(self.name, self.dead_name)
        elif self.kind == "nats":
            asyncio.run(self._nats_cleanup())

    async def _nats_cleanup(self) -> None:
        import nats

        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for stream in (self.name, self.dead_name):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
        await nc.close()

    # -- producing -----------------------------------------------------------------------
    def produce(self, payloads: Sequence[bytes], *, partition: int | None = None) -> None:
        """Publish ``payloads`` (Kafka: alternating between the two partitions, or all to ``partition``)."""
        if self.kind == "redis":
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            pipe = client.pipeline(transaction=False)
            for payload in payloads:
                pipe.xadd(self.name, {"data": payload})
            pipe.execute()
            client.close()
        elif self.kind == "kafka":
            from confluent_kafka import Producer

            producer = Producer({"bootstrap.servers": self.bootstrap})
            for i, payload in enumerate(payloads):
                producer.produce(self.name, payload, partition=i % 2 if partition is None else partition)
            assert producer.flush(30) == 0
        elif self.kind == "nats":
            asyncio.run(self._nats_produce(payloads))
        elif self.kind == "mqtt":
            self._mqtt_produce(payloads)

    async def _nats_produce(self, payloads: Sequence[bytes]) -> None:
        import nats

        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for payload in payloads:
            await js.publish(f"{self.name}.data", payload)
        await nc.close()

    def _mqtt_produce(self, payloads: Sequence[bytes]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"producer-{uuid.uuid4().hex[:8]}")
        client.max_inflight_messages_set(100)
        client.connect(MQTT_HOST, MQTT_PORT)
        client.loop_start()
        infos = [client.publish(f"{self.name}/data", payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(timeout=30)
        client.loop_stop()
        client.disconnect()

    # -- consuming -----------------------------------------------------------------------
    def source_options(self, *, ack_wait: float) -> dict[str, Any]:
        """The options of this service's source for what only some services have.

        ``ack_wait``: NATS's redelivery delay (s) of a message not acknowledged; the other
        services redeliver only after a restart and take no such option.
        """
        return {"ack_wait": ack_wait} if self.kind == "nats" else {}

    def open(self, consumer: str = "c1", **options: Any) -> BaseSource:
        if self.kind == "redis":
            from sygnify.streams.redis import RedisSource

            return RedisSource(
                url=REDIS_URL,
                stream=self.name,
                group="g",
                consumer=consumer,
                dead_letter_stream=self.dead_name,
                **options,
            )
        if self.kind == "kafka":
            from sygnify.streams.kafka import KafkaSource

            assert self.bootstrap is not None
            return KafkaSource(
                topics=[self.name],
                bootstrap_servers=self.bootstrap,
                group_id="g",
                assign=True,
                dead_letter_topic=self.dead_name,
                **options,
            )
        if self.kind == "nats":
            from sygnify.streams.nats import NatsSource

            options.setdefault("ack_wait", 1.0)
            return NatsSource(
                servers=NATS_URL,
                stream=self.name,
                subject=f"{self.name}.>",
                durable="g",
                dead_letter_subject=f"{self.dead_name}.x",
                **options,
            )
        from sygnify.streams.mqtt import MqttSource

        return MqttSource(
            host=MQTT_HOST,
            port=MQTT_PORT,
            topics=[f"{self.name}/#"],
            client_id=f"{self.name}-{consumer}",
            dead_letter_topic=f"{self.dead_name}/x",
            **options,
        )

    def dead_letters(self, expected: int, timeout: float = 20) -> list[tuple[bytes, str]]:
        """The (payload, reason) pairs in the native dead-letter target."""
        deadline = time.monotonic() + timeout
        found: list[tuple[bytes, str]] = []
        while time.monotonic() < deadline:
            found = self._read_dead()
            if len(found) >= expected:
                break
            time.sleep(0.2)
        return found

    def _read_dead(self) -> list[tuple[bytes, str]]:
        if self.kind == "redis":
            import redis

            entries: Any = redis.Redis.from_url(REDIS_URL).xrange(self.dead_name)
            return [(fields[b"payload"], fields[b"reason"].decode()) for _, fields in entries]
        if self.kind == "kafka":
            from confluent_kafka import Consumer, TopicPartition

            consumer = Consumer(
                {"bootstrap.servers": self.bootstrap, "group.id": "dead-reader", "enable.auto.commit": False}
            )
            consumer.assign([TopicPartition(self.dead_name, 0, 0)])
            found: list[tuple[bytes, str]] = []
            for message in consumer.consume(100, timeout=3):
                if message.error() is None:
                    headers: dict[str, Any] = dict(message.headers() or [])
                    found.append((message.value() or b"", headers["reason"].decode()))
            consumer.close()
            return found
        if self.kind == "nats":
            return asyncio.run(self._nats_read_dead())
        return self._mqtt_dead  # filled by a subscriber started in watch_dead_letters()

    async def _nats_read_dead(self) -> list[tuple[bytes, str]]:
        import nats

        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        sub = await js.pull_subscribe(f"{self.dead_name}.>", stream=self.dead_name)
        found: list[tuple[bytes, str]] = []
        try:
            for msg in await sub.fetch(100, timeout=1):
                found.append((msg.data, (msg.headers or {})["Sygnify-Reason"]))
        except nats.errors.TimeoutError:
            pass
        await nc.close()
        return found

    _mqtt_dead: list[tuple[bytes, str]] = field(default_factory=list)
    _mqtt_watcher: Any = None

    def watch_dead_letters(self) -> None:
        """MQTT does not keep messages for absent subscribers: subscribe before producing."""
        if self.kind != "mqtt":
            return
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        subscribed = []

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            body = json.loads(message.payload)
            self._mqtt_dead.append((body["payload"].encode(), body["reason"]))

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dead-{uuid.uuid4().hex[:8]}")
        client.on_message = on_message
        client.on_subscribe = lambda *args: subscribed.append(True)
        client.connect(MQTT_HOST, MQTT_PORT)
        client.subscribe(f"{self.dead_name}/#", qos=1)
        client.loop_start()
        deadline = time.monotonic() + 10
        while not subscribed and time.monotonic() < deadline:
            time.sleep(0.05)
        self._mqtt_watcher = client

    def stop_watching(self) -> None:
        if self._mqtt_watcher is not None:
            self._mqtt_watcher.loop_stop()
            self._mqtt_watcher.disconnect()


def read_packet(conn: socket.socket) -> tuple[int, bytes]:
    """(first byte, body) of the next MQTT packet on ``conn`` (for the fake brokers of the MQTT tests)."""
    header = conn.recv(1)
    if not header:
        raise ConnectionError("closed")
    length, shift = 0, 0
    while True:  # the remaining length is a variable-length integer
        byte = conn.recv(1)[0]
        length += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    body = b""
    while len(body) < length:
        body += conn.recv(length - len(body))
    return header[0], body
