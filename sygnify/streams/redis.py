"""Redis Streams with consumer groups (``pip install 'sygnify[redis]'``).

Entries are read with ``XREADGROUP`` and acknowledged with ``XACK`` only when the batch's
``ack()`` is called. On start the consumer first re-reads its own pending entries (delivered
before a crash, never acknowledged), and entries left pending by *other* dead consumers for
longer than ``claim_idle_ms`` are taken over with ``XAUTOCLAIM``. Each entry carries its
message bytes in one field (``field``, default ``data``)::

    source = RedisSource(url="redis://127.0.0.1:6379/0", stream="sensors", group="ml",
                         dead_letter_stream="sensors:dead")
    for batch in source:
        handle(batch.batch)
        batch.ack()
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any, ClassVar

import redis
from pydantic import Field

from sygnify.errors import ConfigurationError, ConnectionFailedError, OperationTimeoutError
from sygnify.streams.base import BaseSource, RawMessage, SourceConfig

__all__ = ["RedisConfig", "RedisSource"]


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


class RedisConfig(SourceConfig):
    """The options of :class:`RedisSource` (plus those of every source)."""

    stream: str = Field(min_length=1)
    group: str = Field(min_length=1)
    url: str = "redis://127.0.0.1:6379/0"
    consumer: str | None = None
    field: str = "data"
    start_id: str = "0"
    claim_idle_ms: int | None = 30_000
    dead_letter_stream: str | None = None
    client: Any = None


class RedisSource(BaseSource):
    """Consume a Redis stream in a consumer group, acknowledging after processing.

    ``start_id`` is where a *new* group starts (``"0"``: the whole stream, ``"$"``: only new
    entries). ``consumer`` should be stable across restarts of the same worker so it finds its
    own pending entries; it defaults to ``host-pid``, in which case pending entries of a dead
    worker are recovered by ``XAUTOCLAIM`` after ``claim_idle_ms``.
    """

    name: ClassVar[str] = "redis"
    config_model = RedisConfig

    def __init__(
        self,
        *,
        stream: str,
        group: str,
        url: str = "redis://127.0.0.1:6379/0",
        consumer: str | None = None,
        field: str = "data",
        start_id: str = "0",
        claim_idle_ms: int | None = 30_000,
        dead_letter_stream: str | None = None,
        client: redis.Redis | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not stream or not group:
            raise ConfigurationError("RedisSource needs a stream and a group")
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.field = field.encode()
        self.start_id = start_id
        self.claim_idle_ms = claim_idle_ms
        self.dead_letter_stream = dead_letter_stream
        self._url = url
        self._client = client or redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)
        self._recovering = True
        self._pending_cursor = "0"
        self._claim_cursor = "0-0"
        self._ensure_group()

    @property
    def resource(self) -> str:
        return f"redis {_redact(self._url)} stream {self.stream!r} group {self.group!r}"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.TimeoutError as exc:
            raise OperationTimeoutError(f"{self.resource}: {exc}", resource=self.stream) from exc
        except redis.ConnectionError as exc:
            raise ConnectionFailedError(f"{self.resource}: {exc}", resource=self.stream) from exc

    def _ensure_group(self) -> None:
        try:
            self._call(self._client.xgroup_create, self.stream, self.group, id=self.start_id, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise ConfigurationError(f"{self.resource}: cannot create the group: {exc}") from exc

    def _reconnect(self) -> None:
        self._client.connection_pool.reset()
        self._ensure_group()
        self._recovering = True
        self._pending_cursor = "0"

    def _to_message(self, entry_id: bytes, fields: dict[bytes, bytes] | None) -> RawMessage:
        position = {"stream": self.stream, "id": entry_id.decode()}
        if not fields:
            return RawMessage(b"", position, error="entry was deleted from the stream before it was read")
        payload = fields.get(self.field)
        if payload is None:
            return RawMessage(
                b"", position, error=f"entry has no field {self.field.decode()!r} (fields: {sorted(fields)})"
            )
        return RawMessage(payload, position)

    def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
        try:
            return self._fetch_entries(max_records, timeout)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream or group was deleted: recreate and go on
                self._ensure_group()
                return []
            raise

    def _fetch_entries(self, max_records: int, timeout: float) -> list[RawMessage]:
        if self._recovering:
            # this consumer's pending entries, after those already handed out: re-reading from
            # "0" each time would hand out entries still being processed again
            response = self._call(
                self._client.xreadgroup,
                self.group,
                self.consumer,
                {self.stream: self._pending_cursor},
                count=max_records,
            )
            entries = response[0][1] if response else []
            if entries:
                self._pending_cursor = entries[-1][0].decode()
                return [self._to_message(entry_id, fields) for entry_id, fields in entries]
            self._recovering = False
        if self.claim_idle_ms is not None:
            claimed = self._call(
                self._client.xautoclaim,
                self.stream,
                self.group,
                self.consumer,
                self.claim_idle_ms,
                start_id=self._claim_cursor,
                count=max_records,
            )
            self._claim_cursor = claimed[0].decode() if isinstance(claimed[0], bytes) else str(claimed[0])
            if claimed[1]:
                return [self._to_message(entry_id, fields) for entry_id, fields in claimed[1]]
        block_ms = max(1, int(timeout * 1000))
        response = self._call(
            self._client.xreadgroup,
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=max_records,
            block=block_ms,
        )
        entries = response[0][1] if response else []
        return [self._to_message(entry_id, fields) for entry_id, fields in entries]

    def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
        ids = [m.position["id"] for m in messages]
        if ids:
            self._call(self._client.xack, self.stream, self.group, *ids)

    def _send_dead_letters(self, letters: list[dict[str, Any]]) -> None:
        if self.dead_letter_stream is None:
            super()._send_dead_letters(letters)
            return
        pipe = self._client.pipeline(transaction=False)
        for letter in letters:
            pipe.xadd(
                self.dead_letter_stream,
                {
                    "payload": letter["payload"],
                    "reason": letter["reason"],
                    "stream": self.stream,
                    "id": letter["id"],
                },
            )
        self._call(pipe.execute)

    def _batch_metadata(self, messages: Sequence[RawMessage]) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "first_id": messages[0].position["id"],
            "last_id": messages[-1].position["id"],
        }

    def _close(self) -> None:
        self._client.close()
