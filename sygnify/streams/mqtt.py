"""MQTT topics through paho-mqtt with QoS 1 (or 0), and a topic sink (``pip install 'sygnify[mqtt]'``).

The client speaks MQTT 5 and keeps a persistent session (``clean_start=False`` and a session
expiry, by default never) under a stable ``client_id``; it acknowledges (``PUBACK``) each
message only when the batch's ``ack()`` is called (paho's ``manual_ack``). A client that dies
before acknowledging gets the messages again when it reconnects with the same ``client_id``:
at-least-once. Messages published while the client is away are queued by the broker for the
session.

Reconnects: when the connection drops, paho reconnects on its own and the broker sends again,
marked as duplicates, every message it has no ``PUBACK`` for, including those whose
``PUBACK`` was lost with the connection (paho also discards the ones it had not written yet).
The source keeps each message's packet identifier and payload digest while it holds it, and
those of the last ones it acknowledged, so within a session it takes none of these copies
twice: a copy of a message it holds is dropped (acknowledging the one it holds acknowledges
the copy), a copy of one it acknowledged is acknowledged again. They are counted in
:attr:`MqttSource.duplicates`.

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

QoS 0 (``qos=0``) trades the guarantee for less traffic: nothing is acknowledged, so nothing
comes again after a crash (at-most-once), and the client never stops reading the socket.
When its buffer (``max_buffered`` messages) is full it drops the new message and counts it in
:attr:`MqttSource.dropped` (logged too). Messages the *broker* drops at QoS 0 (Mosquitto drops
what it cannot write to a slow client, or to one that is away) never reach the client and
cannot be counted by it.

:class:`MqttTopicSink` writes a stream's results exactly once, each one retained message
(QoS 1) labelled in a ``sygnify-label`` user property. A subscriber gets the last result
again (retained) on every (re)subscription: tell it apart from a new one by its label.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

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

__all__ = ["MqttConfig", "MqttSource", "MqttTopicSink"]

_logger = logging.getLogger(__name__)
#: At QoS 0, a drop is logged the first time and then every this many drops.
_LOG_EVERY_DROPS = 1000

#: The SUBACK reason code of a subscription the broker's access rules refuse (MQTT 5).
NOT_AUTHORIZED = 0x87
#: The largest Receive Maximum MQTT 5 allows (a two-byte integer).
MAX_RECEIVE_MAXIMUM = 65_535
#: Session Expiry Interval meaning "the session never expires" (MQTT 5).
NEVER_EXPIRES = 0xFFFFFFFF
#: The topic filter a closing source unsubscribes from (never subscribed): the broker's
#: answer confirms that it read every acknowledgement sent before.
BARRIER_TOPIC = "sygnify/close-barrier"


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
    qos: Literal[0, 1] = 1


def _ack_now(client: mqtt.Client) -> None:
    """Have the kernel acknowledge what was read now, not after its delayed-ACK timer (Linux).

    Mosquitto does not set ``TCP_NODELAY`` by default, so it holds each new message (Nagle)
    until the client's TCP acknowledges the last one. A client that answers with a ``PUBACK``
    at once carries that ACK along; one that acknowledges after processing (this source) leaves
    it to the delayed-ACK timer, up to 40 ms: messages then came in bursts every 40 ms at
    500 events/s (p99 about 75 ms end to end). ``TCP_QUICKACK`` sends the ACK now; it is not
    permanent, so it is set again after each message that finds the reader waiting.
    """
    quickack = getattr(socket, "TCP_QUICKACK", None)
    setsockopt = getattr(client.socket(), "setsockopt", None)  # a socket (TCP, TLS) or None
    if quickack is not None and setsockopt is not None:
        with contextlib.suppress(OSError):  # not TCP (a proxy, a test double): nothing to tune
            setsockopt(socket.IPPROTO_TCP, quickack, 1)


class MqttSource(BaseSource):
    """Consume MQTT topics with QoS 1 and acknowledge after processing (or QoS 0, counting drops).

    ``username``/``password`` authenticate (the password is never shown); ``tls=True`` turns
    on TLS with certificate verification. paho reconnects on its own with backoff between
    ``reconnect_min_delay`` and ``reconnect_max_delay`` seconds. ``max_buffered`` is the
    Receive Maximum announced to the broker (how many unacknowledged messages it may send
    before it queues); ``session_expiry`` is how long (s) the broker keeps the session while
    the client is away (None: for ever). ``qos=0`` subscribes at QoS 0: nothing to
    acknowledge or redeliver, and a message that finds the buffer full is dropped and counted
    in :attr:`dropped` (what the broker drops at QoS 0 the client cannot see).
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
        qos: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if qos not in (0, 1):
            raise ConfigurationError(
                f"MqttSource takes qos=1 (at-least-once) or qos=0 (counted drops), got {qos!r}"
            )
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
        self.qos = qos
        self._host, self._port = host, port
        self._dropped = 0
        self._duplicates = 0
        #: (message, identity token at QoS 1, session number)
        self._queue: queue.Queue[tuple[mqtt.MQTTMessage, str | None, int]] = queue.Queue(maxsize=max_buffered)
        # Per packet identifier, the digest of the message held (read, not yet acknowledged)
        # and of the last ones acknowledged (at most the Receive Maximum: the broker cannot
        # wait for more PUBACKs than that), to know a redelivered copy; see the module doc.
        self._identity_lock = threading.Lock()
        self._held: dict[int, str] = {}
        self._acked: dict[int, str] = {}
        self._acked_limit = max_buffered
        #: Counts the broker sessions seen: a message of an earlier one is not acknowledged in
        #: a new one (its packet identifier may name another message there).
        self._session = 0
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
        client.on_unsubscribe = self._on_unsubscribe
        self._barrier = threading.Event()
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

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._connect_error = str(reason)
            self._connected.set()
            return
        if not getattr(flags, "session_present", False):
            # a new session (the first, or the broker lost ours): identifiers start afresh, and
            # nothing held or acknowledged before is sent again
            with self._identity_lock:
                self._session += 1
                self._held.clear()
                self._acked.clear()
        # Subscribe on every (re)connect; the persistent session keeps queued messages meanwhile.
        # Ready only once the broker confirms (SUBACK): a message published before that on a
        # new session would not be queued for it.
        client.subscribe([(topic, self.qos) for topic in self.topics])

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

    @property
    def dropped(self) -> int:
        """Messages dropped by this client because its buffer was full (``qos=0`` only; else 0)."""
        return self._dropped

    @property
    def duplicates(self) -> int:
        """Copies the broker sent again after a reconnect of a message this client held or had
        acknowledged, taken once (``qos=1``; see the module doc)."""
        return self._duplicates

    def _first_copy(self, client: mqtt.Client, message: mqtt.MQTTMessage) -> str | None:
        """The identity token of a QoS 1 message, or None when it is a copy already taken."""
        token = f"{message.mid}:{hashlib.blake2b(bytes(message.payload), digest_size=8).hexdigest()}"
        with self._identity_lock:
            if message.dup:
                if self._held.get(message.mid) == token:
                    self._duplicates += 1
                    return None
                if self._acked.get(message.mid) == token:
                    self._duplicates += 1
                    client.ack(message.mid, 1)  # its PUBACK was lost with the connection
                    return None
            else:
                self._acked.pop(message.mid, None)  # reused: the broker had that PUBACK
            self._held[message.mid] = token
        return token

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._queue.empty():
            # The reader waits for this message, and the broker may hold the next one back
            # until it is ACKed (see _ack_now); in a burst the queue is not empty, the broker
            # sends full segments, which the kernel ACKs at once anyway: no syscall per message.
            _ack_now(client)
        if self.qos == 0:
            # Never block at QoS 0: a client that stops reading makes the broker drop unseen.
            try:
                self._queue.put_nowait((message, None, self._session))
            except queue.Full:
                self._dropped += 1  # only the network thread counts: no lock needed
                if self._dropped % _LOG_EVERY_DROPS == 1:
                    _logger.warning(
                        "%s: buffer full (max_buffered=%d): %d QoS 0 messages dropped so far",
                        self.resource,
                        self._queue.maxsize,
                        self._dropped,
                    )
            return
        token = self._first_copy(client, message)
        if token is None:
            return
        item = (message, token, self._session)
        # Blocking here stops paho reading the socket: that is the backpressure on the broker.
        while not self.closed:
            try:
                self._queue.put(item, timeout=0.5)
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
        for message, token, session in pending:
            payload = bytes(message.payload)
            position = {"topic": message.topic, "mid": message.mid, "duplicate": bool(message.dup)}
            if self.qos:
                # a redelivered message keeps its packet identifier (MQTT 5, 4.4); with a digest
                # of the payload it cannot be taken for a new message reusing a freed identifier
                position["token"] = token
            messages.append(RawMessage(payload, position, handle=session))
        return messages

    #: Messages have no lasting position, but keep an identity while unacknowledged: a durable
    #: stream skips a redelivered one it saved already (:class:`~sygnify.processing.stream_state.Progress`).
    session_tokens: ClassVar[bool] = True

    def order_key(self, position: Mapping[str, Any]) -> tuple[str, Any] | None:
        """``("session", (token, redelivered))`` at QoS 1; None at QoS 0 (nothing comes again)."""
        token = position.get("token")
        return None if token is None else ("session", (token, bool(position["duplicate"])))

    def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
        if self.qos == 0:
            return  # QoS 0 has no acknowledgement
        for message in messages:
            mid = message.position["mid"]
            with self._identity_lock:
                if message.handle != self._session:
                    continue  # its session is gone: the broker will not send it again
                token = self._held.pop(mid, None)
                if token is not None:
                    self._acked[mid] = token
                    if len(self._acked) > self._acked_limit:
                        del self._acked[next(iter(self._acked))]  # the oldest
            result = self._client.ack(mid, 1)
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

    def _on_unsubscribe(self, *_args: Any) -> None:
        self._barrier.set()  # only _close() unsubscribes

    def _close(self) -> None:
        # The broker reads a client's packets in order, so its answer to one sent after the
        # last PUBACK means it has them all. Without it the PUBACKs can be lost: messages
        # still arrive, and a socket closed with unread data sends a reset, with which the
        # broker's kernel discards what the broker has not read yet. (An UNSUBSCRIBE of a
        # filter never subscribed changes nothing; the broker answers it all the same.)
        if self.qos and self._connected.is_set():
            self._barrier.clear()
            result, _mid = self._client.unsubscribe(f"{BARRIER_TOPIC}/{self.client_id}")
            if result == mqtt.MQTT_ERR_SUCCESS and not self._barrier.wait(5.0):
                _logger.warning(
                    "%s: no UNSUBACK within 5 s; the last acknowledged messages may come again", self.resource
                )
        # Disconnect while the network loop still runs, and wait until it has written the
        # DISCONNECT: the PUBACKs queued by ack() go out before it. Stopping the loop at once
        # could end it with PUBACKs still queued, and the broker would deliver those again.
        self._disconnected.clear()
        if self._client.disconnect() == mqtt.MQTT_ERR_SUCCESS:
            self._disconnected.wait(5.0)
        self._client.loop_stop()


#: The MQTT 5 user property naming the result (the sink label) a message holds.
LABEL_PROPERTY = "sygnify-label"
#: The lowest MQTT 5 reason code that is a failure.
FAILURE = 0x80
#: PUBACK reason codes that are a mistake in the request, not a failure of the broker:
#: topic name invalid, packet too large, quota exceeded, payload format invalid.
_BAD_REQUEST = {0x90, 0x95, 0x97, 0x99}
#: CONNACK reason codes that refuse the credentials: bad user name or password, not authorized.
_BAD_CREDENTIALS = {0x86, 0x87}


class _ConnectionLost(Exception):
    """The sink's connection ended: reconnect, read the last label again, and retry."""


class MqttTopicSink:
    """Write a stream's results to an MQTT topic, one retained message per result, exactly once.

    Each result is one MQTT 5 message (its rows as JSON lines) published with QoS 1 and
    ``retain=True``, with the label in the ``sygnify-label`` user property; ``write()`` returns
    only once the broker acknowledged it (``PUBACK``). The first write of a run (and the first
    after a lost connection) subscribes to the topic and reads its retained message, which is
    the last result published: a result whose label is there was published before the crash
    (or the lost connection) that repeats it, and is not published again.

    QoS 1, not 2: exactly-once comes from that label check, which also covers a crash (QoS 2's
    duplicate detection lives in a session the dead process takes with it), and paho reports
    the broker's refusals (not authorized, quota exceeded) in ``PUBACK`` but ignores them in
    QoS 2's ``PUBREC``. A message is never sent again by the client library: a lost connection
    drops the client, and the retry on a fresh one starts with the label check.

    Subscribers get the retained last result again on every (re)subscription, marked as
    retained: tell it apart from a new one by its ``sygnify-label`` (labels grow with each
    result of a stream). A result with no rows is not published (an empty retained message
    would delete the last result, and with it the label). The topic has one writer
    (``parallel_safe = False``); the check relies on the broker sending a topic's retained
    message before it answers a later ``UNSUBSCRIBE`` on the same connection, as Mosquitto
    does::

        sink = MqttTopicSink(host="127.0.0.1", topic="scores/fraud")
        stream = ml.stream(source, model="fraud", checkpoint="state.json", sink=sink)
    """

    idempotent = True
    parallel_safe = False

    def __init__(
        self,
        *,
        topic: str,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        client_id: str | None = None,
        keepalive: int = 60,
        timeout: float = 30.0,
        attempts: int = 3,
    ) -> None:
        if not topic or "+" in topic or "#" in topic:
            raise ConfigurationError(
                f"MqttTopicSink needs one topic name without wildcards (+, #), got {topic!r}", resource=topic
            )
        if timeout <= 0 or attempts < 1:
            raise ConfigurationError("MqttTopicSink needs timeout > 0 and attempts >= 1", resource=topic)
        self.topic, self.timeout, self.attempts = topic, timeout, attempts
        self.name = f"mqtt {host}:{port} topic {topic!r}"
        self._host, self._port, self._keepalive = host, port, keepalive
        self._username, self._password, self._tls = username, password, tls
        self._client_id = client_id
        self._client: mqtt.Client | None = None
        self._last_label: str | None = None
        # what the callbacks of the current client saw (the network runs in the caller's thread)
        self._connack: Any = None
        self._lost = False
        self._replies: dict[int, list[Any]] = {}
        self._seen: list[str | None] = []

    # -- the connection --------------------------------------------------------------------
    def _pump(self, done: Callable[[], bool], what: str) -> None:
        """Run the network until ``done()``; a lost connection is ``_ConnectionLost``."""
        assert self._client is not None
        deadline = time.monotonic() + self.timeout
        while not done():
            if self._lost:
                raise _ConnectionLost(f"the connection ended while waiting for {what}")
            if time.monotonic() > deadline:
                raise ConnectionFailedError(
                    f"{self.name}: no {what} within {self.timeout} s", resource=self.topic
                )
            result = self._client.loop(timeout=0.01)
            if result != mqtt.MQTT_ERR_SUCCESS and not done():  # a refused CONNECT ends it too
                raise _ConnectionLost(f"{mqtt.error_string(result)} while waiting for {what}")

    def _open(self) -> None:
        """Connect on a clean session and read the label of the topic's retained message."""
        client_id = self._client_id or f"sygnify-sink-{uuid.uuid4().hex[:12]}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        if self._tls:
            client.tls_set()
        self._connack, self._lost, self._replies, self._seen = None, False, {}, []
        client.on_connect = lambda _c, _u, _f, reason, _p: setattr(self, "_connack", reason)
        client.on_disconnect = lambda *_args: setattr(self, "_lost", True)
        client.on_subscribe = lambda _c, _u, mid, reasons, _p: self._replies.__setitem__(mid, list(reasons))
        client.on_unsubscribe = lambda _c, _u, mid, reasons, _p: self._replies.__setitem__(mid, list(reasons))
        client.on_publish = lambda _c, _u, mid, reason, _p: self._replies.__setitem__(mid, [reason])
        client.on_message = self._on_message
        self._client = client
        try:
            client.connect(self._host, self._port, keepalive=self._keepalive, clean_start=True)
        except (OSError, ValueError) as exc:
            self._drop()
            raise ConnectionFailedError(f"{self.name}: cannot connect: {exc}", resource=self._host) from exc
        try:
            self._pump(lambda: self._connack is not None, "CONNACK")
            if self._connack.is_failure:
                error: type[SygnifyError] = (
                    AuthenticationError if self._connack.value in _BAD_CREDENTIALS else ConnectionFailedError
                )
                raise error(
                    f"{self.name}: the broker refused the connection ({self._connack})", resource=self._host
                )
            # QoS 0: the retained message comes at once, outside any in-flight window.
            result, sub = client.subscribe(self.topic, qos=0)
            if result != mqtt.MQTT_ERR_SUCCESS or sub is None:
                raise _ConnectionLost(mqtt.error_string(result))
            self._pump(lambda: sub in self._replies, "SUBACK")
            reason = self._replies[sub][0]
            if reason.is_failure:
                refusal: type[SygnifyError] = (
                    PermissionDeniedError if reason.value == NOT_AUTHORIZED else ConfigurationError
                )
                raise refusal(
                    f"{self.name}: the broker refused the subscription ({reason})", resource=self.topic
                )
            # The broker sends the retained message after SUBACK and before it answers this.
            result, unsub = client.unsubscribe(self.topic)
            if result != mqtt.MQTT_ERR_SUCCESS or unsub is None:
                raise _ConnectionLost(mqtt.error_string(result))
            self._pump(lambda: unsub in self._replies, "UNSUBACK")
        except BaseException:
            self._drop()
            raise
        self._last_label = self._seen[-1] if self._seen else None

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.topic:
            properties = dict(getattr(message.properties, "UserProperty", None) or [])
            self._seen.append(properties.get(LABEL_PROPERTY))

    def _drop(self) -> None:
        """Forget the client without sending what it still holds (a retry starts afresh)."""
        client, self._client = self._client, None
        if client is not None:
            client.on_disconnect = None
            sock = client.socket()
            if sock is not None:
                sock.close()

    # -- writing ---------------------------------------------------------------------------
    def _publish(self, payload: bytes, label: str) -> None:
        assert self._client is not None
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.UserProperty = (LABEL_PROPERTY, label)
        properties.PayloadFormatIndicator = 1  # UTF-8 text
        info = self._client.publish(self.topic, payload, qos=1, retain=True, properties=properties)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            raise _ConnectionLost("not connected")
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
            raise ConfigurationError(
                f"{self.name}: cannot publish: {mqtt.error_string(info.rc)}", resource=self.topic
            )
        self._pump(lambda: info.mid in self._replies, "PUBACK")
        reason = self._replies.pop(info.mid)[0]
        if reason.is_failure:
            if reason.value == NOT_AUTHORIZED:
                error: type[SygnifyError] = PermissionDeniedError
            elif reason.value in _BAD_REQUEST:
                error = ConfigurationError
            else:
                error = ConnectionFailedError
            raise error(f"{self.name}: the broker refused result {label!r} ({reason})", resource=self.topic)

    def write(self, table: Any, label: str) -> list[str]:
        """Publish ``table``'s rows (an Arrow table) as one retained message under ``label`` (once)."""
        if table.num_rows == 0:
            return [self.topic]
        payload = "\n".join(json.dumps(row, default=str) for row in table.to_pylist()).encode()
        lost: _ConnectionLost | None = None
        for _ in range(self.attempts):
            try:
                if self._client is not None:
                    # sends a due ping, and notices a connection the broker ended meanwhile
                    result = self._client.loop(timeout=0)
                    if result != mqtt.MQTT_ERR_SUCCESS or self._lost:
                        raise _ConnectionLost(mqtt.error_string(result))
                else:
                    self._open()
                if label == self._last_label:
                    return [self.topic]  # published before the crash that repeats it
                self._publish(payload, label)
                self._last_label = label
                return [self.topic]
            except _ConnectionLost as exc:
                self._drop()
                lost = exc
            except BaseException:
                self._drop()  # published or not: the next write checks the retained label again
                raise
        raise ConnectionFailedError(
            f"{self.name}: result {label!r} not published after {self.attempts} connections: {lost}",
            resource=self.topic,
        )

    def close(self) -> list[str]:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop(timeout=0.1)  # write the DISCONNECT
        return [self.topic]
