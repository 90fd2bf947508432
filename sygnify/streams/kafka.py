"""Kafka topics through confluent-kafka (``pip install 'sygnify[kafka]'``).

Offsets are committed only when a batch's ``ack()`` is called (auto-commit and automatic
offset storing are off), so a consumer that dies mid-batch re-reads it: **at-least-once**.

Exactly-once limits: Kafka offsets are cumulative per partition, so acknowledging a batch
also acknowledges every earlier message of its partitions — ack batches in the order they
were read. True exactly-once needs the transactional producer (``send_offsets_to_transaction``)
and only holds for Kafka-to-Kafka pipelines; with any other sink make the writes idempotent
(keyed upserts, deterministic file names) and treat redelivery as normal.

``assign`` (explicit partitions, instant) or ``subscribe`` (consumer-group rebalancing)::

    source = KafkaSource(bootstrap_servers="127.0.0.1:9092", topics=["sensors"],
                         group_id="ml", assign=True, dead_letter_topic="sensors.dead")
    for batch in source:
        handle(batch.batch)
        batch.ack()
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from pydantic import Field

from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    NotFoundError,
    SygnifyError,
)
from sygnify.streams.base import BaseSource, RawMessage, SourceConfig

__all__ = ["KafkaConfig", "KafkaSource", "KafkaTopicSink"]

_TRANSIENT = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TIMED_OUT,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
}
_SECRET_KEYS = ("password", "secret", "sasl.oauthbearer", "ssl.key")


def translate_kafka_error(error: KafkaError, resource: str) -> SygnifyError:
    """The sygnify error for a Kafka error code."""
    code = error.code()
    message = f"{resource}: {error.str()}"
    if code in _TRANSIENT or error.retriable():
        return ConnectionFailedError(message, resource=resource)
    if code in {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}:
        return AuthenticationError(message, resource=resource)
    if code in {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}:
        return NotFoundError(message, resource=resource)
    return ConfigurationError(message, resource=resource)


class _Fetched(list[RawMessage]):
    """The messages of one fetch, with the next offset of each of their partitions."""

    def __init__(self) -> None:
        super().__init__()
        self.next_offsets: dict[tuple[str, int], int] = {}


class KafkaConfig(SourceConfig):
    """The options of :class:`KafkaSource` (plus those of every source)."""

    topics: list[str] = Field(min_length=1)
    bootstrap_servers: str
    group_id: str
    assign: bool = False
    partitions: list[int] | None = None
    dead_letter_topic: str | None = None
    config: dict[str, Any] | None = None


class KafkaSource(BaseSource):
    """Consume Kafka topics, committing offsets after each batch is processed.

    ``config`` passes extra librdkafka settings (security, SASL...); ``auto.offset.reset``
    defaults to ``earliest``. ``partitions`` (with ``assign=True``) limits the assigned
    partitions; by default every partition of every topic is assigned, starting from the
    group's committed offsets.
    """

    name: ClassVar[str] = "kafka"
    config_model = KafkaConfig

    def __init__(
        self,
        *,
        topics: Sequence[str],
        bootstrap_servers: str,
        group_id: str,
        assign: bool = False,
        partitions: Sequence[int] | None = None,
        dead_letter_topic: str | None = None,
        config: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not topics:
            raise ConfigurationError("KafkaSource needs at least one topic")
        self.topics = list(topics)
        self.group_id = group_id
        self.dead_letter_topic = dead_letter_topic
        self._bootstrap = bootstrap_servers
        extra = dict(config or {})
        self._consumer_config = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            # the longest a broker holds a fetch for data to come: a floor under each event's
            # latency on brokers that answer a fetch only at its deadline (librdkafka: 500 ms)
            "fetch.wait.max.ms": 10,
            **extra,
        }
        self._producer_config = {
            "bootstrap.servers": bootstrap_servers,
            **{k: v for k, v in extra.items() if k.startswith(("security.", "sasl.", "ssl."))},
        }
        self._assign = assign
        self._partitions = list(partitions) if partitions is not None else None
        self._producer: Producer | None = None
        self._consumer = self._connect()

    @property
    def resource(self) -> str:
        return f"kafka {self._bootstrap} topics {','.join(self.topics)} group {self.group_id!r}"

    def __repr__(self) -> str:
        # librdkafka settings may hold secrets: only non-secret keys are shown
        shown = sorted(k for k in self._consumer_config if not any(s in k for s in _SECRET_KEYS))
        return f"KafkaSource({self.resource!r}, config_keys={shown})"

    def _connect(self) -> Consumer:
        try:
            consumer = Consumer(self._consumer_config)
        except KafkaException as exc:
            raise translate_kafka_error(exc.args[0], self.resource) from exc
        if not self._assign:
            consumer.subscribe(self.topics)
            return consumer
        try:
            assignment = []
            for topic in self.topics:
                if self._partitions is not None:
                    numbers = self._partitions
                else:
                    metadata = consumer.list_topics(topic, timeout=10)
                    info = metadata.topics.get(topic)
                    if info is None or info.error is not None or not info.partitions:
                        raise NotFoundError(
                            f"{self.resource}: topic {topic!r} does not exist", resource=topic
                        )
                    numbers = sorted(info.partitions)
                assignment += [TopicPartition(topic, p, confluent_kafka.OFFSET_STORED) for p in numbers]
            consumer.assign(assignment)
        except KafkaException as exc:
            consumer.close()
            raise translate_kafka_error(exc.args[0], self.resource) from exc
        except BaseException:
            consumer.close()
            raise
        return consumer

    def _reconnect(self) -> None:
        # librdkafka reconnects by itself; a fresh consumer resumes from committed offsets
        old, self._consumer = self._consumer, self._connect()
        with contextlib.suppress(KafkaException, RuntimeError):
            old.close()

    def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
        # Poll, then drain: ``consume(n, timeout)`` alone waits for n messages or the whole
        # timeout, which puts a poll timeout (not max_latency) on every event's latency. What is
        # already fetched is taken at once; otherwise the read blocks only until the first
        # message arrives, then takes whatever came with it.
        try:
            polled = self._consumer.consume(num_messages=max_records, timeout=0)
            if not polled:
                first = self._consumer.poll(timeout)
                if first is not None:
                    polled = [first]
                    if max_records > 1:
                        polled += self._consumer.consume(num_messages=max_records - 1, timeout=0)
        except KafkaException as exc:
            raise translate_kafka_error(exc.args[0], self.resource) from exc
        messages = _Fetched()
        append, offsets = messages.append, messages.next_offsets
        for message in polled:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise translate_kafka_error(error, self.resource)
            topic: Any = message.topic()
            partition: Any = message.partition()
            offset: Any = message.offset()
            position = {"topic": topic, "partition": partition, "offset": offset}
            # a partition's messages come in offset order: the last one's is the next offset
            offsets[topic, partition] = offset + 1
            payload = message.value()
            if payload is None:
                append(RawMessage(b"", position, error="message has no value (tombstone)"))
            else:
                append(RawMessage(payload, position))
        return messages

    def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
        offsets = self._next_offsets(messages)
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
            )
        except KafkaException as exc:
            raise translate_kafka_error(exc.args[0], self.resource) from exc

    @staticmethod
    def _next_offsets(messages: Sequence[RawMessage]) -> dict[tuple[str, int], int]:
        if isinstance(messages, _Fetched):
            return messages.next_offsets  # found while fetching, not once more per use
        offsets: dict[tuple[str, int], int] = {}
        for message in messages:
            key = (message.position["topic"], message.position["partition"])
            offsets[key] = max(offsets.get(key, -1), message.position["offset"] + 1)
        return offsets

    def _send_dead_letters(self, letters: list[dict[str, Any]]) -> None:
        if self.dead_letter_topic is None:
            super()._send_dead_letters(letters)
            return
        if self._producer is None:
            self._producer = Producer(self._producer_config)
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, _message: Any) -> None:
            if error is not None:
                failures.append(error)

        for letter in letters:
            headers = {
                "reason": letter["reason"].encode(),
                "topic": str(letter["topic"]).encode(),
                "partition": str(letter["partition"]).encode(),
                "offset": str(letter["offset"]).encode(),
            }
            self._producer.produce(
                self.dead_letter_topic, letter["payload"], headers=headers, on_delivery=delivered
            )
        remaining = self._producer.flush(30)
        if remaining or failures:
            error = failures[0] if failures else None
            raise ConnectionFailedError(
                f"{self.resource}: dead-letter topic {self.dead_letter_topic!r} did not take "
                f"{len(failures) or remaining} message(s){f': {error.str()}' if error else ''}",
                resource=self.dead_letter_topic,
            )

    def _batch_metadata(self, messages: Sequence[RawMessage]) -> dict[str, Any]:
        return {"offsets": {f"{t}/{p}": o for (t, p), o in self._next_offsets(messages).items()}}

    def _close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
        with contextlib.suppress(KafkaException, RuntimeError):
            self._consumer.close()

    def order_key(self, position: Mapping[str, Any]) -> tuple[str, Any] | None:
        """A message's partition and offset: Kafka delivers each partition in offset order."""
        return f"{position['topic']}/{position['partition']}", int(position["offset"])

    def lagging_partitions(self) -> list[str] | None:
        """Assigned partitions whose position is behind their high watermark (cached by librdkafka
        from fetch answers, so this asks the broker nothing); a partition whose position or
        watermark is not known yet counts as behind unless it is known to be empty. None with a
        single partition assigned."""
        try:
            assigned = self._consumer.assignment()
            if len(assigned) <= 1:
                return None  # one partition: its order is the event order there is
            positions = self._consumer.position(assigned)
        except (KafkaException, RuntimeError):
            return None
        lagging = []
        for tp in positions:
            try:
                low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except (KafkaException, RuntimeError):
                low, high = -1, -1
            known = low >= 0 and high >= 0
            if known and high <= low:
                continue  # empty partition
            if not known or tp.offset < 0 or tp.offset < high:
                lagging.append(f"{tp.topic}/{tp.partition}")
        return lagging


#: The header naming the result (the sink label) every record of it carries.
LABEL_HEADER = "sygnify-label"


class KafkaTopicSink:
    """Write a stream's results to a Kafka topic, each row one record (JSON), exactly once.

    Each result is one Kafka transaction (``transactional_id``, stable across restarts of the
    same stream: the next run's producer fences the one that died and aborts what it left
    open), and every record carries its label in the ``sygnify-label`` header. Before the
    first write of a run the sink reads the topic's last ``lookback`` committed records per
    partition: a label found there was committed before a crash and is not written again
    (the label is stored with the output). Consumers of the topic should read with
    ``isolation.level=read_committed``::

        sink = KafkaTopicSink(bootstrap_servers="127.0.0.1:9092", topic="scores",
                              transactional_id="fraud-scores")
        stream = ml.stream(source, model="fraud", checkpoint="state.json", sink=sink)
    """

    idempotent = True
    parallel_safe = False

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        transactional_id: str,
        key: str | None = None,
        lookback: int = 1000,
        timeout: float = 30.0,
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        if not topic or not transactional_id or lookback < 1:
            raise ConfigurationError("KafkaTopicSink needs a topic, a transactional_id and lookback >= 1")
        self.topic, self.key, self.lookback, self.timeout = topic, key, lookback, timeout
        self.name = f"kafka topic {topic!r} at {bootstrap_servers}"
        self._bootstrap = bootstrap_servers
        config = {
            "bootstrap.servers": bootstrap_servers,
            "transactional.id": transactional_id,
            **dict(producer_config or {}),
        }
        self._producer = Producer(config)
        self._ready = False
        self._committed: set[str] = set()

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except KafkaException as exc:
            raise translate_kafka_error(exc.args[0], self.name) from exc

    def _start(self) -> None:
        self._call(self._producer.init_transactions, self.timeout)  # fences the previous run
        self._committed = self._labels_at_the_end()
        self._ready = True

    def _labels_at_the_end(self) -> set[str]:
        """The labels of the last ``lookback`` committed records of each partition."""
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": "sygnify-sink-check",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        labels: set[str] = set()
        try:
            metadata = self._call(consumer.list_topics, self.topic, self.timeout)
            info = metadata.topics.get(self.topic)
            if info is None or info.error is not None:
                raise NotFoundError(f"{self.name}: the topic does not exist", resource=self.topic)
            starts = []
            for partition in info.partitions:
                low, high = self._call(
                    consumer.get_watermark_offsets, TopicPartition(self.topic, partition), self.timeout
                )
                if high > low:
                    starts.append(TopicPartition(self.topic, partition, max(low, high - self.lookback)))
            if not starts:
                return labels
            consumer.assign(starts)
            at_end = 0
            while at_end < len(starts):
                message = consumer.poll(self.timeout)
                if message is None:
                    break
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end += 1
                        continue
                    raise translate_kafka_error(error, self.name)
                value = dict(message.headers() or []).get(LABEL_HEADER)
                if value is not None:
                    labels.add(value.decode() if isinstance(value, bytes) else str(value))
        finally:
            consumer.close()
        return labels

    def write(self, table: Any, label: str) -> list[str]:
        """Append ``table``'s rows (an Arrow table) as one transaction, unless ``label`` is committed."""
        if not self._ready:
            self._start()
        if label in self._committed:
            return [self.topic]
        producer = self._producer
        headers: list[tuple[str, str | bytes | None]] = [(LABEL_HEADER, label.encode())]
        self._call(producer.begin_transaction)
        try:
            for row in table.to_pylist():
                key = None if self.key is None else str(row.get(self.key)).encode()
                producer.produce(self.topic, json.dumps(row, default=str).encode(), key=key, headers=headers)
                producer.poll(0)
            self._call(producer.commit_transaction, self.timeout)
        except BaseException:
            with contextlib.suppress(KafkaException):
                producer.abort_transaction(self.timeout)
            raise
        self._committed = {label}  # a run writes each label once: only a restart repeats one
        return [self.topic]

    def close(self) -> list[str]:
        self._producer.flush(self.timeout)
        return [self.topic]
