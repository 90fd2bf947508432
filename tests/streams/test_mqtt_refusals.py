"""Subscriptions the broker refuses are typed errors, read from the broker's SUBACK.

Mosquitto grants every subscription under MQTT 3.1.1 (its access rules only filter the
messages), so a refusal cannot be provoked from the local broker. This minimal broker
speaks the protocol on a socket: real paho, real packets, a SUBACK with a failure code.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from sygnify.errors import ConfigurationError, ConnectionFailedError
from sygnify.streams.mqtt import MqttSource
from tests.streams.backends import read_packet


@pytest.fixture
def refusing_broker(request: pytest.FixtureRequest) -> Iterator[int]:
    """A broker that accepts the connection and answers SUBSCRIBE with ``request.param``
    as the return code (0x80: failure), or never answers it when that is None."""
    code: int | None = request.param
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            try:
                while True:
                    first, body = read_packet(conn)
                    kind = first >> 4
                    # MQTT 5 packets (the source speaks MQTT 5): a zero-length properties field.
                    if kind == 1:  # CONNECT -> CONNACK, session accepted
                        conn.sendall(bytes([0x20, 0x03, 0x00, 0x00, 0x00]))
                    elif kind == 8 and code is not None:  # SUBSCRIBE -> SUBACK with the code
                        conn.sendall(bytes([0x90, 0x04]) + body[:2] + bytes([0x00, code]))
            except (ConnectionError, OSError, IndexError):
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()
    thread.join(timeout=5)


@pytest.mark.parametrize("refusing_broker", [0x80], indirect=True)
def test_a_refused_subscription_is_a_configuration_error(refusing_broker: int) -> None:
    with pytest.raises(ConfigurationError, match=r"refused the subscription to sensors/#"):
        MqttSource(port=refusing_broker, topics=["sensors/#"], client_id="refused", connect_timeout=5)


@pytest.mark.parametrize("refusing_broker", [None], indirect=True)
def test_a_subscription_never_acknowledged_times_out(refusing_broker: int) -> None:
    with pytest.raises(ConnectionFailedError, match="no CONNACK/SUBACK within 1"):
        MqttSource(port=refusing_broker, topics=["sensors/#"], client_id="silent", connect_timeout=1)
