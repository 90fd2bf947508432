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

Speed: new entries are read, and batches acknowledged, through two small Lua scripts
(``EVALSHA``) that answer a batch in three strings instead of five replies per entry; while a
backlog lasts the next batch is read on a second connection as this one is processed; the
``XAUTOCLAIM`` scan runs at most once per ``claim_idle_ms`` (or second). A server that refuses
scripts (ACLs, scripting disabled) gets the plain ``XREADGROUP`` and ``XACK``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import redis
from pydantic import Field

from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    OperationTimeoutError,
    PermissionDeniedError,
)
from sygnify.streams.base import BaseSource, RawMessage, SourceConfig

__all__ = ["RedisConfig", "RedisSource", "RedisStreamSink"]

_logger = logging.getLogger(__name__)

#: XREADGROUP of new entries on the server, answered as three strings (the entry ids joined by
#: commas, the payload sizes, -1 where an entry lacks the field, and the payloads back to back)
#: instead of five nested replies per entry: redis-py's parser costs more per entry than the
#: rest of a micro-batch. Scripts run commands without blocking: a read that finds nothing falls
#: back to the blocking XREADGROUP.
_READ_NEW = """
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
if not reply then return {} end
local ids, sizes, payloads = {}, {}, {}
for i, entry in ipairs(reply[1][2]) do
  ids[i] = entry[1]
  local fields, payload = entry[2], nil
  if fields then
    for j = 1, #fields, 2 do
      if fields[j] == ARGV[4] then payload = fields[j + 1] end
    end
  end
  if payload then
    sizes[i] = #payload
    payloads[i] = payload
  else
    sizes[i] = -1
    payloads[i] = ''
  end
end
return {table.concat(ids, ','), table.concat(sizes, ','), table.concat(payloads)}
"""
#: XACK of a batch's entry ids sent as one comma-joined argument: redis-py packs each argument
#: of a command in Python, which for a batch's thousand ids costs more than the XACK itself.
_ACK = """
local ids, n, acked = {}, 0, 0
for id in string.gmatch(ARGV[2], '[^,]+') do
  n = n + 1
  ids[n] = id
end
for first = 1, n, 1000 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids, first, math.min(first + 999, n)))
end
return acked
"""


#: The longest one blocking ``XREADGROUP`` waits: a read with a longer timeout blocks in slices
#: of it, so ``close()`` from another thread ends a read waiting on an idle stream this soon.
BLOCK_SLICE_S = 0.2
#: Redis expires blocking commands on its timer (``hz 10`` by default: every 100 ms), so a
#: ``BLOCK`` returns up to that long after its timeout (new entries wake it at once). The last
#: part of a wait therefore polls without ``BLOCK``, every :data:`POLL_S`, so a read returns
#: on time: a window closed by ``close_after`` is emitted within milliseconds of its deadline.
SERVER_TIMER_S = 0.1
POLL_S = 0.01


def _translated(resource: str, stream: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with redis-py's errors as sygnify's (the one Redis error map)."""
    try:
        return fn(*args, **kwargs)
    except redis.TimeoutError as exc:
        raise OperationTimeoutError(f"{resource}: {exc}", resource=stream) from exc
    except redis.AuthenticationError as exc:  # a ConnectionError in redis-py: before it
        raise AuthenticationError(f"{resource}: {exc}", resource=stream) from exc
    except redis.ConnectionError as exc:
        raise ConnectionFailedError(f"{resource}: {exc}", resource=stream) from exc
    except redis.exceptions.NoPermissionError as exc:
        raise PermissionDeniedError(
            f"{resource}: the Redis user may not run this command ({exc}); grant it with ACL SETUSER",
            resource=stream,
        ) from exc


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
        self._claimed_at = -float("inf")  # when XAUTOCLAIM last ran (time.monotonic)
        # the server-side read and ack; None once the server refuses scripts
        self._scripts: tuple[Any, Any] | None = (
            self._client.register_script(_READ_NEW),
            self._client.register_script(_ACK),
        )
        self._ahead: Any = None  # a connection with a scripted read sent ahead, answer not taken
        self._ahead_messages: list[RawMessage] = []  # what it read beyond the fetch that took it
        self._ensure_group()

    @property
    def resource(self) -> str:
        return f"redis {_redact(self._url)} stream {self.stream!r} group {self.group!r}"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return _translated(self.resource, self.stream, fn, *args, **kwargs)

    def _ensure_group(self) -> None:
        try:
            self._call(self._client.xgroup_create, self.stream, self.group, id=self.start_id, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise ConfigurationError(f"{self.resource}: cannot create the group: {exc}") from exc

    def _reconnect(self) -> None:
        self._drop_ahead()
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
        if self.claim_idle_ms is not None and self._claim_due():
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
            self._claimed_at = time.monotonic()
            if claimed[1]:
                return [self._to_message(entry_id, fields) for entry_id, fields in claimed[1]]
        if self._scripts is not None:
            scripted = self._read_scripted(max_records)
            if scripted:
                return scripted
        return self._read_blocking(max_records, timeout)

    def _read_blocking(self, max_records: int, timeout: float) -> list[RawMessage]:
        """New entries by ``XREADGROUP BLOCK``, waiting at most ``timeout`` s in slices of
        :data:`BLOCK_SLICE_S`: ``close()`` is seen between two (entries a slice returns after
        it are this consumer's pending entries, read again by the next run)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            # BLOCK only while the server's timer cannot overshoot the deadline; then poll
            block_ms = int(min(left - SERVER_TIMER_S, BLOCK_SLICE_S) * 1000)
            response = self._call(
                self._client.xreadgroup,
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=max_records,
                block=block_ms if block_ms >= 1 else None,
            )
            entries = response[0][1] if response else []
            if entries or self.closed or time.monotonic() >= deadline:
                return [self._to_message(entry_id, fields) for entry_id, fields in entries]
            if block_ms < 1:
                time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def _claim_due(self) -> bool:
        """Whether to look for entries other consumers left idle (XAUTOCLAIM scans the pending list).

        They are taken over only after ``claim_idle_ms`` anyway, so one scan per ``claim_idle_ms``
        (at most one a second) loses nothing but a scan per fetch's cost; a scan not finished
        (its cursor not back at the start) goes on at the next fetch.
        """
        assert self.claim_idle_ms is not None
        interval = min(1.0, self.claim_idle_ms / 1000)
        return self._claim_cursor != "0-0" or time.monotonic() - self._claimed_at >= interval

    def _read_scripted(self, max_records: int) -> list[RawMessage]:
        """New entries through the :data:`_READ_NEW` script ([] if none); plain reads if refused.

        While a backlog lasts (a read came back full), the next read is sent at once on a
        connection of its own and its answer taken by the next fetch, so the server reads the
        next batch while this one is processed. Its entries are this consumer's pending entries
        like any others: not acknowledged, they are read again after a restart.
        """
        assert self._scripts is not None
        if self._ahead_messages:
            taken, self._ahead_messages = (
                self._ahead_messages[:max_records],
                self._ahead_messages[max_records:],
            )
            return taken
        args = [self.group, self.consumer, max_records, self.field]
        reply = self._receive_ahead() if self._ahead is not None else None
        if reply is None:
            reply = self._scripted(self._scripts[0], args)
        messages = self._scripted_messages(reply)
        if len(messages) >= max_records and self._scripts is not None:
            self._send_ahead(args)
        if len(messages) > max_records:  # the read sent ahead asked for more than this fetch
            messages, self._ahead_messages = messages[:max_records], messages[max_records:]
        return messages

    def _scripted_messages(self, reply: Any) -> list[RawMessage]:
        if not reply or not reply[0]:
            return []
        ids, sizes, payloads = reply
        stream, end, messages = self.stream, 0, []
        for entry_id, size in zip(ids.split(b","), map(int, sizes.split(b",")), strict=True):
            if size < 0:  # no payload field: the plain read says which fields it has
                found = self._call(self._client.xrange, self.stream, entry_id, entry_id)
                messages.append(self._to_message(entry_id, found[0][1] if found else None))
                continue
            start = end
            end += size
            messages.append(RawMessage(payloads[start:end], {"stream": stream, "id": entry_id.decode()}))
        return messages

    def _send_ahead(self, args: list[Any]) -> None:
        assert self._scripts is not None
        pool = getattr(self._client, "connection_pool", None)
        if pool is None:  # not a plain client (a cluster): no reads ahead
            return
        connection = pool.get_connection()
        try:
            connection.send_command("EVALSHA", self._scripts[0].sha, 1, self.stream, *args)
        except (redis.ConnectionError, redis.TimeoutError):
            pool.release(connection)  # nothing was sent for sure: the next fetch reads as usual
            return
        self._ahead = connection

    def _receive_ahead(self) -> Any:
        """The answer to the read sent ahead; None if the script must be sent again (NOSCRIPT)."""
        connection, self._ahead = self._ahead, None
        assert connection is not None
        try:
            return self._call(connection.read_response)
        except redis.exceptions.NoScriptError:  # the server lost its scripts (restart, SCRIPT FLUSH)
            return None
        finally:
            self._client.connection_pool.release(connection)

    def _drop_ahead(self) -> None:
        """Forget a read sent ahead (its entries stay pending for this consumer, read again later)."""
        self._ahead_messages = []
        connection, self._ahead = self._ahead, None
        if connection is not None:
            connection.disconnect()
            self._client.connection_pool.release(connection)

    def _scripted(self, script: Any, args: list[Any]) -> Any:
        """The script's reply; None (and plain commands from now on) if the server refuses scripts."""
        try:
            return self._call(script, keys=[self.stream], args=args)
        except (redis.ResponseError, PermissionDeniedError) as exc:
            refused = isinstance(exc, PermissionDeniedError) or any(
                refusal in str(exc) for refusal in ("unknown command", "not allowed", "disabled")
            )
            if not refused:
                raise
            # scripting disabled or not permitted (managed services, ACLs): plain commands
            _logger.info("%s: scripts refused (%s); using XREADGROUP and XACK", self.resource, exc)
            self._scripts = None
            return None

    def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
        ids = [m.position["id"] for m in messages]
        if not ids:
            return
        if (
            self._scripts is not None
            and self._scripted(self._scripts[1], [self.group, ",".join(ids)]) is not None
        ):
            return
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
        self._drop_ahead()
        self._client.close()

    def order_key(self, position: Mapping[str, Any]) -> tuple[str, Any] | None:
        """A stream entry's stream and id (``ms-seq`` as two integers): ids only grow."""
        ms, _, seq = str(position["id"]).partition("-")
        return str(position["stream"]), (int(ms), int(seq or 0))


#: Appends a result's rows once per label: the label's guard key and the entries in one atomic
#: script, so a label written again (after a crash) adds nothing.
_APPEND_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  for i = 3, #ARGV do
    redis.call('XADD', KEYS[1], '*', ARGV[2], ARGV[i])
  end
  return #ARGV - 2
end
return -1
"""


class RedisStreamSink:
    """Write a stream's results to a Redis stream, each row one entry (JSON in ``field``), exactly once.

    ``ml.stream(..., checkpoint=..., sink=RedisStreamSink(stream="scores"))``: every result is
    written under its label in one Lua script that first sets the label's guard key
    (``<stream>:sygnify-label:<label>``, kept ``dedup_ttl`` seconds), so writing a label again
    after a crash adds nothing. Rows are JSON objects (numbers, strings, booleans, nulls;
    timestamps as ISO strings)::

        sink = RedisStreamSink(url="redis://127.0.0.1:6379/0", stream="scores")
        sink.write(pa.table({"id": [1], "prediction": [0.9]}), "run-00000001")
    """

    idempotent = True
    parallel_safe = False

    def __init__(
        self,
        *,
        stream: str,
        url: str = "redis://127.0.0.1:6379/0",
        field: str = "data",
        dedup_ttl: int = 7 * 24 * 3600,
        client: Any = None,
    ) -> None:
        if not stream or dedup_ttl < 1:
            raise ConfigurationError("RedisStreamSink needs a stream name and dedup_ttl >= 1 s")
        self.stream, self.field, self.dedup_ttl = stream, field, dedup_ttl
        self.name = f"redis stream {stream!r} at {_redact(url)}"
        self._client = client if client is not None else redis.Redis.from_url(url)
        self._script = self._client.register_script(_APPEND_ONCE)

    def write(self, table: Any, label: str) -> list[str]:
        """Append ``table``'s rows (an Arrow table) under ``label`` (once); returns the stream's name."""
        rows = table.to_pylist()
        payloads = [json.dumps(row, default=str) for row in rows]
        guard = f"{self.stream}:sygnify-label:{label}"
        try:
            _translated(
                self.name,
                self.stream,
                self._script,
                keys=[self.stream, guard],
                args=[self.dedup_ttl, self.field, *payloads],
            )
        except PermissionDeniedError as exc:
            # no fallback: without a script the guard key and the entries are not one atomic step
            raise PermissionDeniedError(
                f"{self.name}: the sink appends each result once through a Lua script, which this "
                f"Redis user may not run ({exc.__cause__}); grant it scripting (ACL SETUSER <user> "
                "+@scripting, or at least +evalsha +eval +script|load)",
                resource=self.stream,
            ) from exc.__cause__
        return [self.stream]

    def close(self) -> list[str]:
        self._client.close()
        return [self.stream]
