"""NATS JetStream durable pull consumers (``pip install 'sygnify[nats]'``).

Messages are fetched from a durable consumer and each is acknowledged (``+ACK``) only when the
batch's ``ack()`` is called; a message not acknowledged within the consumer's ``ack_wait`` is
redelivered, so delivery is at-least-once. nats-py is asyncio-only: the source runs its own
event loop on a background thread and exposes the same blocking contract as every source::

    source = NatsSource(servers="nats://127.0.0.1:4222", stream="SENSORS",
                        subject="sensors.>", durable="ml", dead_letter_subject="dead.sensors")
    for batch in source:
        handle(batch.batch)
        batch.ack()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from sygnify.errors import ConfigurationError, ConnectionFailedError, NotFoundError, OperationTimeoutError
from sygnify.streams.base import BaseSource, RawMessage, SourceConfig

__all__ = ["NatsConfig", "NatsSource", "NatsSubjectSink"]

T = TypeVar("T")

#: How long a pull waits for messages already in the stream (a local round trip is far less).
_DRAIN_S = 0.01


def _redact(servers: str) -> str:
    return ",".join(
        f"{s.split('://', 1)[0]}://***@{s.split('@', 1)[1]}" if "@" in s else s for s in servers.split(",")
    )


class _LoopThread:
    """An asyncio event loop on a daemon thread, for nats-py (asyncio only) behind blocking calls."""

    def __init__(self, name: str, resource: str) -> None:
        self.resource = resource
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the loop and wait for it (``OperationTimeoutError`` after ``timeout``)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError as exc:
            future.cancel()
            raise OperationTimeoutError(f"{self.resource}: no answer within {timeout} s") from exc

    def stop(self, connection: Client | None) -> None:
        """Close ``connection``, cancel what still runs on the loop, and end the thread."""

        async def shutdown() -> None:
            if connection is not None and not connection.is_closed:
                # closing must not raise: unacknowledged messages are redelivered anyway
                with contextlib.suppress(Exception):
                    await connection.close()
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                self.run(shutdown(), timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class NatsConfig(SourceConfig):
    """The options of :class:`NatsSource` (plus those of every source)."""

    stream: str
    subject: str
    durable: str
    servers: str = "nats://127.0.0.1:4222"
    ack_wait: float = 30.0
    max_deliver: int = -1
    max_ack_pending: int = 100_000
    create_stream: bool = False
    dead_letter_subject: str | None = None
    connect_options: dict[str, Any] | None = None


class NatsSource(BaseSource):
    """Consume a JetStream stream through a durable pull consumer.

    The stream must exist (``create_stream=True`` creates it for ``subject`` if missing). The
    durable consumer is created on first use with ``ack_wait`` seconds before redelivery,
    ``max_deliver`` attempts and ``max_ack_pending`` messages delivered and not acknowledged
    at most (JetStream's own default, 1,000, would stop delivering to a windowed stream whose
    open windows hold more); later starts reuse it and resume where it left off.
    """

    name: ClassVar[str] = "nats"
    config_model = NatsConfig

    def __init__(
        self,
        *,
        stream: str,
        subject: str,
        durable: str,
        servers: str = "nats://127.0.0.1:4222",
        ack_wait: float = 30.0,
        max_deliver: int = -1,
        max_ack_pending: int = 100_000,
        create_stream: bool = False,
        dead_letter_subject: str | None = None,
        connect_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.dead_letter_subject = dead_letter_subject
        self._servers = servers
        self._ack_wait = ack_wait
        self._max_deliver = max_deliver
        self._max_ack_pending = max_ack_pending
        self._create_stream = create_stream
        self._connect_options = dict(connect_options or {})
        self._nc: Client | None = None
        self._runner = _LoopThread(f"sygnify-nats-{durable}", self.resource)
        self._sub: Any = None
        try:
            self._run(self._connect(), timeout=30)
        except BaseException:
            self._stop_loop()
            raise

    @property
    def resource(self) -> str:
        return f"nats {_redact(self._servers)} stream {self.stream!r} durable {self.durable!r}"

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        return self._runner.run(coroutine, timeout)

    async def _connect(self) -> None:
        try:
            self._nc = await nats.connect(
                self._servers,
                connect_timeout=5,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                allow_reconnect=True,
                **self._connect_options,
            )
        except (OSError, nats.errors.NoServersError, nats.errors.TimeoutError) as exc:
            raise ConnectionFailedError(
                f"{self.resource}: cannot connect: {exc}", resource=self.stream
            ) from exc
        js = self._nc.jetstream()
        try:
            await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError as exc:
            if not self._create_stream:
                raise NotFoundError(
                    f"{self.resource}: JetStream stream {self.stream!r} does not exist; create it or "
                    "pass create_stream=True",
                    resource=self.stream,
                ) from exc
            await js.add_stream(name=self.stream, subjects=[self.subject])
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self._ack_wait,
            max_deliver=self._max_deliver,
            max_ack_pending=self._max_ack_pending,
            filter_subject=self.subject,
        )
        self._sub = await js.pull_subscribe(
            self.subject, durable=self.durable, stream=self.stream, config=config
        )

    async def _fetch_async(self, max_records: int, timeout: float) -> list[Any]:
        # A pull of ``max_records`` that finds nothing waits for that many messages or the whole
        # timeout. So: take what is there now (a short pull), else wait for the first message
        # alone (a one-message pull returns as it arrives), then take what came with it.
        drain = min(_DRAIN_S, timeout)
        msgs = await self._pull(max_records, drain)
        if msgs or timeout <= drain:
            return msgs
        msgs = await self._pull(1, timeout - drain)
        if msgs and max_records > 1:
            msgs += await self._pull(max_records - 1, _DRAIN_S)
        return msgs

    async def _pull(self, batch: int, timeout: float) -> list[Any]:
        try:
            msgs: list[Any] = await self._sub.fetch(batch=batch, timeout=timeout)
            return msgs
        except TimeoutError:  # nats.errors.TimeoutError, or asyncio's when the deadline ran out
            return []

    def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
        if self._nc is None or self._nc.is_closed:
            raise ConnectionFailedError(f"{self.resource}: connection is closed", resource=self.stream)
        try:
            msgs = self._run(self._fetch_async(max_records, max(timeout, _DRAIN_S)), timeout=timeout + 30)
        except (nats.errors.ConnectionClosedError, nats.errors.NoRespondersError, OSError) as exc:
            raise ConnectionFailedError(f"{self.resource}: {exc}", resource=self.stream) from exc
        messages = []
        for msg in msgs:
            meta = msg.metadata
            position = {
                "subject": msg.subject,
                "stream_seq": meta.sequence.stream,
                "consumer_seq": meta.sequence.consumer,
                "delivered": meta.num_delivered,
            }
            messages.append(RawMessage(msg.data, position, handle=msg))
        return messages

    def _reconnect(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            return  # nats-py reconnects an open connection by itself
        self._run(self._connect(), timeout=30)

    async def _ack_all(self, messages: Sequence[RawMessage]) -> None:
        for message in messages:
            await message.handle.ack()
        assert self._nc is not None
        await self._nc.flush()

    def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
        try:
            self._run(self._ack_all(messages), timeout=30)
        except (nats.errors.ConnectionClosedError, nats.errors.Error, OSError) as exc:
            raise ConnectionFailedError(f"{self.resource}: ack failed: {exc}", resource=self.stream) from exc

    async def _publish_dead(self, letters: list[dict[str, Any]]) -> None:
        assert self._nc is not None
        assert self.dead_letter_subject is not None
        js = self._nc.jetstream()
        for letter in letters:
            headers = {
                "Sygnify-Reason": letter["reason"][:1000],
                "Sygnify-Subject": letter["subject"],
                "Sygnify-Stream-Seq": str(letter["stream_seq"]),
            }
            await js.publish(self.dead_letter_subject, letter["payload"], headers=headers)

    def _send_dead_letters(self, letters: list[dict[str, Any]]) -> None:
        if self.dead_letter_subject is None:
            super()._send_dead_letters(letters)
            return
        try:
            self._run(self._publish_dead(letters), timeout=30)
        except nats.errors.NoRespondersError as exc:
            raise ConfigurationError(
                f"{self.resource}: no JetStream stream captures the dead-letter subject "
                f"{self.dead_letter_subject!r}; add one",
                resource=self.dead_letter_subject,
            ) from exc

    def _batch_metadata(self, messages: Sequence[RawMessage]) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "first_seq": messages[0].position["stream_seq"],
            "last_seq": messages[-1].position["stream_seq"],
        }

    def _stop_loop(self) -> None:
        self._runner.stop(self._nc)

    def _close(self) -> None:
        self._stop_loop()

    #: Redeliveries come after newer messages (after ``ack_wait``): positions are not in order.
    in_order: ClassVar[bool] = False

    def order_key(self, position: Mapping[str, Any]) -> tuple[str, Any] | None:
        """A message's stream and stream sequence."""
        return self.stream, int(position["stream_seq"])


#: JetStream's error code for a missing stream (10037 is "no message found").
STREAM_NOT_FOUND = 10059
#: The header naming the result (the sink label) a message holds.
LABEL_HEADER = "Sygnify-Label"


class NatsSubjectSink:
    """Write a stream's results to a JetStream subject, one message per result, exactly once.

    Each result is one message (its rows as JSON lines) with the label in ``Nats-Msg-Id``
    (JetStream drops a repeat within the stream's duplicate window) and in the
    ``Sygnify-Label`` header. Before the first write of a run the sink reads the subject's last
    message: a result whose label is there was published before a crash and is not published
    again, however long the restart took. A JetStream stream must capture ``subject``::

        sink = NatsSubjectSink(servers="nats://127.0.0.1:4222", stream="SCORES", subject="scores.fraud")
        stream = ml.stream(source, model="fraud", checkpoint="state.json", sink=sink)
    """

    idempotent = True
    parallel_safe = False

    def __init__(
        self,
        *,
        stream: str,
        subject: str,
        servers: str = "nats://127.0.0.1:4222",
        timeout: float = 30.0,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        if not stream or not subject:
            raise ConfigurationError("NatsSubjectSink needs the JetStream stream and the subject")
        self.stream, self.subject, self.timeout = stream, subject, timeout
        self.name = f"nats {_redact(servers)} subject {subject!r}"
        self._servers = servers
        self._connect_options = dict(connect_options or {})
        self._nc: Client | None = None
        self._last_label: str | None = None
        self._runner = _LoopThread(f"sygnify-nats-sink-{subject}", self.name)

    async def _start(self) -> Client:
        try:
            nc = await nats.connect(self._servers, connect_timeout=5, **self._connect_options)
        except (OSError, nats.errors.NoServersError, nats.errors.TimeoutError) as exc:
            raise ConnectionFailedError(
                f"{self.name}: cannot connect: {exc}", resource=self._servers
            ) from exc
        self._nc = nc
        try:
            last = await nc.jetstream().get_last_msg(self.stream, self.subject)
            self._last_label = (last.headers or {}).get(LABEL_HEADER)
        except nats.js.errors.NotFoundError as exc:
            if getattr(exc, "err_code", None) == STREAM_NOT_FOUND:
                raise NotFoundError(
                    f"{self.name}: no JetStream stream {self.stream!r}", resource=self.stream
                ) from exc
            self._last_label = None  # nothing published on the subject yet
        return nc

    async def _publish(self, payload: bytes, label: str) -> None:
        nc = self._nc or await self._start()
        if label == self._last_label:
            return  # published before the crash that repeats it
        headers = {"Nats-Msg-Id": label, LABEL_HEADER: label}
        try:
            await nc.jetstream().publish(self.subject, payload, headers=headers, stream=self.stream)
        except nats.errors.NoRespondersError as exc:
            raise ConfigurationError(
                f"{self.name}: no JetStream stream captures the subject; add one", resource=self.subject
            ) from exc
        except (nats.errors.Error, OSError) as exc:
            raise ConnectionFailedError(f"{self.name}: publish failed: {exc}", resource=self.subject) from exc
        self._last_label = label

    def write(self, table: Any, label: str) -> list[str]:
        """Publish ``table``'s rows (an Arrow table) as one message under ``label`` (once)."""
        payload = "\n".join(json.dumps(row, default=str) for row in table.to_pylist()).encode()
        self._runner.run(self._publish(payload, label), self.timeout)
        return [self.subject]

    def close(self) -> list[str]:
        self._runner.stop(self._nc)
        return [self.subject]
