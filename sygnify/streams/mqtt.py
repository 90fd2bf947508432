"""MQTT topics through paho-mqtt with QoS 1 (``pip install 'sygnify[mqtt]'``).

The client speaks MQTT 5 and keeps a persistent session (``clean_start=False`` and a session
expiry, by default never) under a stable ``client_id``; it acknowledges (``PUBACK``) each
message only when the batch's ``ack()`` is called (paho's ``manual_ack``). A client that dies
before acknowledging gets the messages again when it reconnects with the same ``client_id``:
at-least-once. Messages published while the client is away are queued by the broker for the
session.

Bursts: a broker sends at most the client's *Receive Maximum* unacknowledged QoS 1 messages
and queues the rest (Mosquitto: ``max_queued_messages``, 1,000 by default, beyond which it
drops them). The client announces ``receive_maximum = max_buffered`` (default 10,000, at most
65,535), so a burst of that many messages is all in flight to the client while earlier
batches are processed, and the broker queue is only used beyond it. ``max_buffered`` also
bounds the messages held in memory::

    source = MqttSource(host="127.0.0.1", topics=["sensors/#"], client_id="ml-worker-1",
                        dead_letter_topic="sensors/dead")
    for batch in source:
        handle(batch.batch)
        batch.ack()
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import Field, SecretStr

from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    PermissionDeniedError,
    SygnifyError,
)
from sygnify.streams.base import BaseSource, RawMessage, SourceConfig

__all__ = ["MqttConfig", "MqttSource"]

#: The SUBACK reason code of a subscription the broker's access rules refuse (MQTT 5).
NOT_AUTHORIZED = 0x87
#: The largest Receive Maximum MQTT 5 allows (a two-byte integer).
MAX_RECEIVE_MAXIMUM = 65_535
#: Session Expiry Interval meaning "the session never expires" (MQTT 5).
NEVER_EXPIRES = 0xFFFFFFFF


class MqttConfig(SourceConfig):
    """The options of :class:`MqttSource` (plus those of every source); the password is a secret."""

    topics: list[str] = Field(min_length=1)
    client_id: str = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    keepalive: int = 30
    max_buffered: int = Field(10_000, ge=1, le=MAX_RECEIVE_MAXIMUM)
    dead_letter_topic: str | None = None
    reconnect_min_delay: int = 1
    reconnect_max_delay: int = 30
    connect_timeout: float = 10.0
    session_expiry: int | None = None


class MqttSource(BaseSource):
    """Consume MQTT topics with QoS 1 and acknowledge after processing.

    ``username``/``password`` authenticate (the password is never shown); ``tls=True`` turns
    on TLS with certificate verification. paho reconnects on its own with backoff between
    ``reconnect_min_delay`` and ``reconnect_max_delay`` seconds. ``max_buffered`` is the
    Receive Maximum announced to the broker (how many unacknowledged messages it may send
    before it queues); ``session_expiry`` is how long (s) the broker keeps the session while
    the client is away (None: for ever).
    """

    name: ClassVar[str] = "mqtt"
    config_model = MqttConfig

    def __init__(
        self,
        *,
        topics: Sequence[str],
        client_id: str,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        keepalive: int = 30,
        max_buffered: int = 10_000,
        dead_letter_topic: str | None = None,
        reconnect_min_delay: int = 1,
        reconnect_max_delay: int = 30,
        connect_timeout: float = 10.0,
        session_expiry: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not topics or not client_id:
            raise ConfigurationError("MqttSource needs topics and a stable client_id")
        if not 1 <= max_buffered <= MAX_RECEIVE_MAXIMUM:
            raise ConfigurationError(
                f"max_buffered must be between 1 and {MAX_RECEIVE_MAXIMUM} (the MQTT 5 Receive Maximum), "
                f"got {max_buffered}"
            )
        self.topics = list(topics)
        self.client_id = client_id
        self.dead_letter_topic = dead_letter_topic
        self._host, self._port = host, port
        self._queue: queue.Queue[mqtt.MQTTMessage] = queue.Queue(maxsize=max_buffered)
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._connect_error: str | None = None
        #: The error type of a refused subscription (None: not refused).
        self._refusal: type[SygnifyError] | None = None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        if username is not None:
            client.username_pw_set(username, password)
        if tls:
            client.tls_set()
        client.reconnect_delay_set(reconnect_min_delay, reconnect_max_delay)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # The broker sends this many unacknowledged QoS 1 messages before it queues (and, past
        # its queue limit, drops): every message the local buffer can hold is in flight.
        properties.ReceiveMaximum = max_buffered
        properties.SessionExpiryInterval = NEVER_EXPIRES if session_expiry is None else session_expiry
        try:
            client.connect(host, port, keepalive=keepalive, clean_start=False, properties=properties)
        except OSError as exc:
            raise ConnectionFailedError(f"{self.resource}: cannot connect: {exc}", resource=host) from exc
        client.loop_start()
        if not self._connected.wait(connect_timeout) or self._connect_error:
            client.loop_stop()
            client.disconnect()
            reason = self._connect_error or f"no CONNACK/SUBACK within {connect_timeout} s"
            error_type = self._refusal or (
                AuthenticationError if "authoriz" in reason.lower() else ConnectionFailedError
            )
            raise error_type(f"{self.resource}: {reason}", resource=host)

    @property
    def resource(self) -> str:
        return f"mqtt {self._host}:{self._port} topics {','.join(self.topics)} client {self.client_id!r}"

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._connect_error = str(reason)
            self._connected.set()
            return
        # Subscribe on every (re)connect; the persistent session keeps queued messages meanwhile.
        # Ready only once the broker confirms (SUBACK): a message published before that on a
        # new session would not be queued for it.
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: list[Any], _props: Any
    ) -> None:
        refused = {
            topic: reason for topic, reason in zip(self.topics, reasons, strict=False) if reason.is_failure
        }
        if refused:
            # MQTT 5 says why (0x87: not authorized); MQTT 3.1.1 only says "failure" (0x80).
            denied = any(reason.value == NOT_AUTHORIZED for reason in refused.values())
            self._refusal = PermissionDeniedError if denied else ConfigurationError
            details = ", ".join(f"{topic} ({reason})" for topic, reason in refused.items())
            self._connect_error = f"the broker refused the subscription to {details}"
        else:
            self._refusal, self._connect_error = None, None
        self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, _reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        self._disconnected.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Blocking here stops paho reading the socket: that is the backpressure on the broker.
        while not self.closed:
            try:
                self._queue.put(message, timeout=0.5)
                return
            except queue.Full:
                continue

    def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
        messages: list[RawMessage] = []
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return messages
        pending = [first]
        while len(pending) < max_records:
            try:
                pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for message in pending:
            position = {"topic": message.topic, "mid": message.mid, "duplicate": bool(message.dup)}
            messages.append(RawMessage(bytes(message.payload), position, handle=message))
        return messages

    def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
        for message in messages:
            result = self._client.ack(message.position["mid"], 1)
            if result != mqtt.MQTT_ERR_SUCCESS:
                # the session redelivers it after reconnecting: at-least-once still holds
                raise ConnectionFailedError(
                    f"{self.resource}: PUBACK failed ({mqtt.error_string(result)})", resource=self._host
                )

    def _send_dead_letters(self, letters: list[dict[str, Any]]) -> None:
        if self.dead_letter_topic is None:
            super()._send_dead_letters(letters)
            return
        for letter in letters:
            body = json.dumps(
                {
                    "reason": letter["reason"],
                    "topic": letter["topic"],
                    "payload": letter["payload"].decode("utf-8", errors="replace"),
                }
            )
            info = self._client.publish(self.dead_letter_topic, body, qos=1)
            info.wait_for_publish(timeout=30)
            if not info.is_published():
                raise ConnectionFailedError(
                    f"{self.resource}: dead-letter topic {self.dead_letter_topic!r} did not confirm",
                    resource=self.dead_letter_topic,
                )

    def _close(self) -> None:
        # Disconnect while the network loop still runs, and wait until it has written the
        # DISCONNECT: the PUBACKs queued by ack() go out before it. Stopping the loop at once
        # could end it with PUBACKs still queued, and the broker would deliver those again.
        self._disconnected.clear()
        if self._client.disconnect() == mqtt.MQTT_ERR_SUCCESS:
            self._disconnected.wait(5.0)
        self._client.loop_stop()
