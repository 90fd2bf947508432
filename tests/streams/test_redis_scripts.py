"""RedisSource's Lua-script paths on the real Redis: a user without scripting, close() mid-read.

- A Redis ACL user without ``@scripting`` gets the plain ``XREADGROUP``/``XACK`` path: every
  entry read once, acknowledged, and redelivered after a restart when it was not (the server's
  ACL log shows the scripts were tried and refused). ``RedisStreamSink`` has no plain path
  (its guard key and entries must be one atomic step): it raises ``PermissionDeniedError``,
  and so does a source whose user may not create its group (at open, naming the command).
- ``close()`` from another thread ends a read blocked on an idle stream within a second, and
  one with a read sent ahead (a backlog) without acknowledging anything not processed: the
  next consumer gets every entry that was not acknowledged, and none that was.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
import redis

from sygnify.errors import PermissionDeniedError, SourceClosedError
from sygnify.streams.base import BaseSource, SourceBatch
from sygnify.streams.redis import RedisSource, RedisStreamSink
from tests.services import require
from tests.streams.backends import REDIS_URL, port_open

SCHEMA = pa.schema([("id", pa.int64())])


@pytest.fixture
def admin() -> Iterator[redis.Redis]:
    require(port_open(6379), "redis on 127.0.0.1:6379")
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def stream(admin: redis.Redis) -> Iterator[str]:
    name = f"sygnify-test-{uuid.uuid4().hex[:12]}"
    yield name
    admin.delete(name)


@pytest.fixture
def noscript_user(admin: redis.Redis) -> Iterator[str]:
    """A Redis user allowed everything but scripting; its URL."""
    user = f"sygnify-noscript-{uuid.uuid4().hex[:8]}"
    # ACL SETUSER <user> on >pw ~* &* +@all -@scripting
    admin.acl_setuser(
        user,
        enabled=True,
        passwords=["+pw"],
        keys=["~*"],
        channels=["*"],
        categories=["+@all", "-@scripting"],
    )
    try:
        yield f"redis://{user}:pw@127.0.0.1:6379/0"
    finally:
        admin.acl_deluser(user)


def produce(admin: redis.Redis, stream: str, ids: range) -> None:
    pipe = admin.pipeline(transaction=False)
    for i in ids:
        pipe.xadd(stream, {"data": f'{{"id": {i}}}'})
    pipe.execute()


def ids_of(batch: SourceBatch) -> list[int]:
    return [int(i) for i in batch.batch.column("id").to_pylist()]


def read_all(source: BaseSource, count: int, *, ack: bool = True) -> list[int]:
    """Read until ``count`` records came (acknowledging each batch), within 10 s."""
    got: list[int] = []
    deadline = time.monotonic() + 10
    while len(got) < count:
        assert time.monotonic() < deadline, f"read {len(got)} of {count}"
        batch = source.read(max_records=100, timeout=0.5)
        if batch is not None:
            got += ids_of(batch)
            if ack:
                batch.ack()
    return got


def pending(admin: redis.Redis, stream: str) -> int:
    return int(admin.xpending(stream, "g")["pending"])


def test_a_user_without_scripting_reads_and_acknowledges_through_plain_commands(
    admin: redis.Redis, stream: str, noscript_user: str
) -> None:
    total = 250
    produce(admin, stream, range(total))
    user = noscript_user.split("//")[1].split(":")[0]
    options: dict[str, Any] = {"url": noscript_user, "stream": stream, "group": "g", "schema": SCHEMA}
    with RedisSource(consumer="c1", **options) as source:
        first = read_all(source, 100)
        unacked = source.read(max_records=100, timeout=0.5)  # read, never acknowledged
        assert unacked is not None
    refused = [e for e in admin.acl_log(count=100) if e.get("username") == user]
    assert {e["object"] for e in refused} & {"evalsha", "eval"}, refused  # the scripts were tried
    assert pending(admin, stream) == unacked.batch.num_rows  # plain XACK acknowledged the rest
    with RedisSource(consumer="c1", **options) as again:  # the same worker after a restart
        rest = read_all(again, total - len(first))
    assert ids_of(unacked) == rest[: unacked.batch.num_rows]  # its pending entries come first
    assert sorted(first + rest) == list(range(total))
    assert pending(admin, stream) == 0


def test_the_redis_sink_refuses_a_user_without_scripting_with_permission_denied(
    stream: str, noscript_user: str
) -> None:
    sink = RedisStreamSink(url=noscript_user, stream=stream)
    try:
        with pytest.raises(PermissionDeniedError, match=r"\+@scripting") as caught:
            sink.write(pa.table({"id": [1]}), "run-00000001")
        assert caught.value.resource == stream
    finally:
        sink.close()


def test_a_user_refused_a_stream_command_fails_at_open_with_permission_denied(
    admin: redis.Redis, stream: str
) -> None:
    user = f"sygnify-noxgroup-{uuid.uuid4().hex[:8]}"
    admin.acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=["~*"], categories=["+@all"], commands=["-xgroup"]
    )
    try:
        with pytest.raises(PermissionDeniedError, match="xgroup") as caught:
            RedisSource(url=f"redis://{user}:pw@127.0.0.1:6379/0", stream=stream, group="g")
        assert caught.value.resource == stream
    finally:
        admin.acl_deluser(user)


def blocked_reads(admin: redis.Redis, name: str) -> int:
    """Connections named ``name`` blocked in XREADGROUP now."""
    return sum(
        1
        for c in admin.client_list()
        if c.get("name") == name and c.get("cmd") == "xreadgroup" and "b" in c.get("flags", "")
    )


def test_close_from_another_thread_ends_a_blocked_read_within_a_second(
    admin: redis.Redis, stream: str
) -> None:
    name = f"sygnify-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL, client_name=name)
    source = RedisSource(stream=stream, group="g", consumer="c1", client=client, poll_timeout=30.0)
    ended: list[Any] = []

    def consume() -> None:
        try:
            for batch in source:
                ended.append(batch)
        except BaseException as exc:  # asserted below: there must be none
            ended.append(exc)
        ended.append("end")

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    deadline = time.monotonic() + 10
    while not blocked_reads(admin, name):  # the consumer waits in XREADGROUP BLOCK
        assert time.monotonic() < deadline, "the source never blocked in XREADGROUP"
        time.sleep(0.02)
    started = time.monotonic()
    source.close()
    worker.join(5)
    took = time.monotonic() - started
    assert not worker.is_alive()
    assert took < 1.0, f"the read ended {took:.2f} s after close()"
    assert ended == ["end"]


def test_close_with_a_read_sent_ahead_acknowledges_only_what_was_processed(
    admin: redis.Redis, stream: str
) -> None:
    total = 300
    produce(admin, stream, range(total))
    source = RedisSource(stream=stream, group="g", consumer="c1", schema=SCHEMA, batch_size=100)
    processed: list[int] = []
    in_hand = threading.Event()
    closed = threading.Event()
    outcome: list[Any] = []

    def consume() -> None:
        try:
            for batch in source:
                processed.extend(ids_of(batch))
                batch.ack()  # processed: acknowledged
                in_hand.set()
                closed.wait(10)  # close() comes while the next read is sent ahead, unanswered
                outcome.append(source.read(max_records=100, timeout=0.5))
                try:
                    batch.ack()  # idempotent: already acknowledged
                except SourceClosedError as exc:
                    outcome.append(exc)
        except BaseException as exc:  # asserted below: there must be none
            outcome.append(exc)

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    assert in_hand.wait(10)
    source.close()
    closed.set()
    worker.join(5)
    assert not worker.is_alive()
    assert outcome == [None]  # a read after close() returns nothing; no error
    assert processed == list(range(100))
    assert pending(admin, stream) == 100  # what the read sent ahead took: delivered, not acknowledged
    # the next consumer (the same worker restarted, or another) gets all that was not acknowledged
    with RedisSource(stream=stream, group="g", consumer="c1", schema=SCHEMA) as again:
        rest = read_all(again, total - 100)
        assert again.read(max_records=100, timeout=0.3) is None
    assert sorted(rest) == list(range(100, total))
    assert pending(admin, stream) == 0
