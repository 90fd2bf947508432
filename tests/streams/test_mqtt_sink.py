"""MqttTopicSink: one retained QoS 1 message per result, written once per label.

Against Mosquitto: a label already on the topic (its retained message) is not published again
by a new sink (a restarted run), nor by the same one; subscribers get the last result again on
subscribing, with its label. Against a minimal broker on a socket (real paho, real packets):
the broker's refusals are typed errors, and a connection lost after the broker took a result
but before its PUBACK reached the sink does not publish that result twice.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pytest

from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    PermissionDeniedError,
)
from sygnify.streams.mqtt import MqttTopicSink
from tests.services import require
from tests.streams.backends import MqttRecorder, port_open, read_packet


@pytest.fixture
def topic() -> Iterator[str]:
    require(port_open(1883), "mosquitto on 127.0.0.1:1883")
    name = f"sygnify-test-{uuid.uuid4().hex[:12]}/scores"
    recorder = MqttRecorder(name)
    yield name
    recorder.delete_retained()
    recorder.stop()


def table(*ids: int) -> pa.Table:
    return pa.table({"id": list(ids), "score": [i / 10 for i in ids]})


def test_each_label_is_published_once_across_restarts(topic: str) -> None:
    recorder = MqttRecorder(topic)
    try:
        sink = MqttTopicSink(topic=topic)
        assert sink.write(table(1, 2), "run-00000001") == [topic]
        sink.write(table(1, 2), "run-00000001")  # the same sink again: skipped
        sink.write(table(3), "run-00000002")
        sink.close()
        restarted = MqttTopicSink(topic=topic)  # a new run repeats the last saved result
        restarted.write(table(3), "run-00000002")
        restarted.write(table(4), "run-00000003")
        restarted.close()
        recorder.wait_for(3)
        late = MqttRecorder(topic)  # a subscriber that comes later gets the last result, retained
        late.wait_for(1)
        late.stop()
    finally:
        recorder.stop()
    assert recorder.messages == [
        ("run-00000001", False, [{"id": 1, "score": 0.1}, {"id": 2, "score": 0.2}]),
        ("run-00000002", False, [{"id": 3, "score": 0.3}]),
        ("run-00000003", False, [{"id": 4, "score": 0.4}]),
    ]
    assert late.messages == [("run-00000003", True, [{"id": 4, "score": 0.4}])]


def test_a_result_without_rows_publishes_nothing(topic: str) -> None:
    sink = MqttTopicSink(topic=topic)
    sink.write(table(1), "run-00000001")
    sink.write(table().slice(0, 0), "run-00000002")  # would delete the retained result
    sink.close()
    late = MqttRecorder(topic)
    late.wait_for(1)
    late.stop()
    assert late.messages == [("run-00000001", True, [{"id": 1, "score": 0.1}])]


def test_a_connection_the_broker_ends_is_reopened_for_the_next_result(topic: str) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    recorder = MqttRecorder(topic)
    client_id = f"sink-{uuid.uuid4().hex[:8]}"
    sink = MqttTopicSink(topic=topic, client_id=client_id)
    sink.write(table(1), "run-00000001")
    # a client with the same id takes the session over: Mosquitto disconnects the sink
    connected = threading.Event()
    other = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    other.on_connect = lambda *_args: connected.set()
    other.connect("127.0.0.1", 1883)
    other.loop_start()
    assert connected.wait(10)
    other.disconnect()
    other.loop_stop()
    sink.write(table(2), "run-00000002")  # on a new connection, after the label check
    sink.close()
    recorder.wait_for(2)
    recorder.stop()
    assert recorder.labels() == ["run-00000001", "run-00000002"]


def test_bad_topics_and_unreachable_brokers_are_typed_errors() -> None:
    with pytest.raises(ConfigurationError, match="without wildcards"):
        MqttTopicSink(topic="scores/#")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ConnectionFailedError, match="cannot connect"):
        MqttTopicSink(topic="scores", port=port).write(table(1), "run-00000001")


# -- a minimal MQTT 5 broker -----------------------------------------------------------------


def packet(first: int, body: bytes) -> bytes:
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            return bytes([first]) + encoded + body


@dataclass
class FakeBroker:
    """Answers CONNACK with ``connack`` and SUBACK with ``suback``; a PUBLISH is kept (as the
    topic's retained message) and answered with ``puback``, or (``drop_first_puback``) the first
    one is kept and its connection closed before the PUBACK."""

    connack: int = 0x00
    suback: int = 0x00
    puback: int = 0x00
    drop_first_puback: bool = False
    publishes: list[bytes] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(4)
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                try:
                    self._session(conn)
                except (ConnectionError, OSError, IndexError):
                    continue

    def _session(self, conn: socket.socket) -> None:
        while True:
            first, body = read_packet(conn)
            kind = first >> 4
            if kind == 1:  # CONNECT
                conn.sendall(packet(0x20, bytes([0x00, self.connack, 0x00])))
            elif kind == 8:  # SUBSCRIBE: SUBACK, then the retained message
                conn.sendall(packet(0x90, body[:2] + bytes([0x00, self.suback])))
                if self.publishes:
                    conn.sendall(packet(0x30 | 0x01, retained_at_qos0(self.publishes[-1])))
            elif kind == 10:  # UNSUBSCRIBE
                conn.sendall(packet(0xB0, body[:2] + bytes([0x00, 0x00])))
            elif kind == 3:  # PUBLISH (QoS 1)
                self.publishes.append(body)
                if self.drop_first_puback and len(self.publishes) == 1:
                    return  # closes the connection: the sink never learns it was taken
                topic_length = int.from_bytes(body[:2], "big")
                pid = body[2 + topic_length : 4 + topic_length]
                conn.sendall(packet(0x40, pid + bytes([self.puback, 0x00])))
            elif kind == 12:  # PINGREQ
                conn.sendall(bytes([0xD0, 0x00]))
            elif kind == 14:  # DISCONNECT
                return

    def close(self) -> None:
        self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread
        self._server.close()
        self._thread.join(timeout=5)


def retained_at_qos0(body: bytes) -> bytes:
    """A QoS 1 PUBLISH body as a QoS 0 one (no packet id), as a QoS 0 subscription gets it."""
    topic_length = int.from_bytes(body[:2], "big")
    return body[: 2 + topic_length] + body[4 + topic_length :]


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[FakeBroker]:
    created = FakeBroker(**getattr(request, "param", {}))
    yield created
    created.close()


@pytest.mark.parametrize("broker", [{"drop_first_puback": True}], indirect=True)
def test_a_result_taken_by_the_broker_before_a_lost_puback_is_not_published_again(
    broker: FakeBroker,
) -> None:
    sink = MqttTopicSink(topic="scores", port=broker.port)
    sink.write(table(1), "run-00000001")  # lost PUBACK: reconnect, the retained label says it is there
    sink.write(table(2), "run-00000002")
    sink.close()
    assert len(broker.publishes) == 2
    assert b"run-00000001" in broker.publishes[0]
    assert b"run-00000002" in broker.publishes[1]


@pytest.mark.parametrize(
    ("broker", "error", "match"),
    [
        ({"connack": 0x86}, AuthenticationError, "refused the connection"),
        ({"connack": 0x88}, ConnectionFailedError, "refused the connection"),
        ({"suback": 0x87}, PermissionDeniedError, "refused the subscription"),
        ({"suback": 0x8F}, ConfigurationError, "refused the subscription"),
        ({"puback": 0x87}, PermissionDeniedError, "refused result 'run-00000001'"),
        ({"puback": 0x97}, ConfigurationError, "refused result 'run-00000001'"),
    ],
    indirect=["broker"],
)
def test_refusals_of_the_broker_are_typed_errors(
    broker: FakeBroker, error: type[Exception], match: str
) -> None:
    sink = MqttTopicSink(topic="scores", port=broker.port, timeout=5)
    with pytest.raises(error, match=match):
        sink.write(table(1), "run-00000001")
    sink.close()
