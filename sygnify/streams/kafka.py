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

Rebalancing (``assign=False``): when partitions move to another member of the group, the
new owner reads them from the group's committed offset. By default
(``on_rebalance="redeliver"``) batches read before the move stay valid: acknowledging one
commits only the partitions this consumer still owns, the others are read again by their new
owner (at-least-once: nothing lost, some records twice), and offsets the group refused during
the rebalance are committed as the partitions are revoked. A consumer that keeps state per
partition (a checkpointed stream's windows and progress) cannot hand that state over: with
``on_rebalance="raise"`` (:meth:`KafkaSource.hold_partitions`) a read that sees a revocation
waits for the group's next assignment (so nothing is saved or acknowledged while the owner is
unknown): the same partitions back, it goes on; any other assignment ends reading with
:class:`PartitionsRevokedError` and the consumer leaves the group. What it acknowledged is
committed, what it read since is not, and goes to the new owner.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import Field

from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    NotFoundError,
    PartitionsRevokedError,
    SourceClosedError,
    SygnifyError,
)
from sygnify.streams.base import BaseSource, RawMessage, SourceConfig

__all__ = ["KafkaConfig", "KafkaSource", "KafkaTopicSink", "PartitionsRevokedError"]

_logger = logging.getLogger(__name__)

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
#: A commit the group refuses because it is rebalancing, or because this member's generation
#: is over: the offsets are not lost, they are committed at the revocation or read again.
_REBALANCING = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._ASSIGNMENT_LOST,
}

#: What a rebalance does to a subscribed source (see the module docstring).
Rebalance = Literal["redeliver", "raise"]
#: A user's rebalance hook: called with the partitions ("topic/partition") assigned or revoked.
PartitionsHook = Callable[[list[str]], None]


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
    on_rebalance: Rebalance = "redeliver"
    on_assign: PartitionsHook | None = None
    on_revoke: PartitionsHook | None = None


class KafkaSource(BaseSource):
    """Consume Kafka topics, committing offsets after each batch is processed.

    ``config`` passes extra librdkafka settings (security, SASL...); ``auto.offset.reset``
    defaults to ``earliest``. ``partitions`` (with ``assign=True``) limits the assigned
    partitions; by default every partition of every topic is assigned, starting from the
    group's committed offsets.

    Without ``assign`` the source subscribes and the group balances partitions between its
    members. ``on_rebalance`` says what a move of partitions does: ``"redeliver"`` (default;
    at-least-once, the new owner re-reads what was not acknowledged) or ``"raise"`` (a move
    ends reading with :class:`PartitionsRevokedError`, for a consumer with per-partition state
    such as a checkpointed stream; also :meth:`hold_partitions`). ``on_assign`` and
    ``on_revoke`` are called with the partitions ("topic/partition") of each change, from the
    thread that reads.
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
        on_rebalance: Rebalance = "redeliver",
        on_assign: PartitionsHook | None = None,
        on_revoke: PartitionsHook | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not topics:
            raise ConfigurationError("KafkaSource needs at least one topic")
        if on_rebalance not in ("redeliver", "raise"):
            raise ConfigurationError(
                f"on_rebalance must be 'redeliver' or 'raise', not {on_rebalance!r}", resource=group_id
            )
        self.on_rebalance: Rebalance = on_rebalance
        self._on_assign, self._on_revoke = on_assign, on_revoke
        # subscribe mode: the partitions this member owns now, the first assignment a consumer
        # with per-partition state started from, the partitions whose move ends reading, offsets
        # acknowledged while the group refused commits (committed at the revocation)
        self._owned: set[tuple[str, int]] = set()
        self._held: set[tuple[str, int]] | None = None
        self._moved: list[str] | None = None
        self._refused: dict[tuple[str, int], int] = {}
        # the highest offset this source committed per partition: another owner starts from the
        # committed offset and only moves it on, so a lower one is never committed again
        self._committed: dict[tuple[str, int], int] = {}
        self._hook_error: BaseException | None = None
        self._leaving = False
        self._between: float | None = None  # when a revocation came that no assignment followed yet
        self._uncommitted: list[str] = []  # partitions whose acknowledged offsets the group refused
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
            self._owned = set()
            consumer.subscribe(
                self.topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
            )
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
        old = self._consumer
        self._leave(old)  # leave first: the fresh member then gets the old one's partitions
        self._consumer = self._connect()

    def _leave(self, consumer: Consumer) -> None:
        """Close ``consumer`` (it leaves the group): its own revocation is not a move."""
        self._leaving = True
        try:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()
        finally:
            self._leaving = False

    # -- rebalancing (subscribe mode) -------------------------------------------------------
    def hold_partitions(self) -> None:
        """Say that the consumer keeps state per partition (what a checkpointed stream does).

        From now on a subscribed source ends reading with :class:`PartitionsRevokedError`
        when a rebalance gives it other partitions than its first assignment
        (``on_rebalance="raise"``); with ``assign=True`` partitions never move and this
        changes nothing. Call it before the first read.
        """
        self.on_rebalance = "raise"

    @property
    def assigned_partitions(self) -> list[str]:
        """The partitions ("topic/partition") this source reads now (subscribe mode: after the
        group's last rebalance; empty while none is assigned)."""
        if self._assign:
            with contextlib.suppress(KafkaException, RuntimeError):
                return sorted(f"{tp.topic}/{tp.partition}" for tp in self._consumer.assignment())
            return []
        return sorted(f"{t}/{p}" for t, p in self._owned)

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """librdkafka's assignment callback (inside poll): the partitions now ours."""
        added = {(tp.topic, tp.partition) for tp in partitions}
        self._owned |= added
        self._between = None
        if self._uncommitted and self._held is not None and self._owned == self._held:
            self._uncommitted = []  # back with this consumer: its reads are skipped, not counted twice
        if self.on_rebalance == "raise":
            if self._held is None:
                self._held = set(self._owned)
            elif self._owned != self._held and self._moved is None:
                self._moved = sorted(f"{t}/{p}" for t, p in self._owned ^ self._held)
        self._call_hook(self._on_assign, added)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """librdkafka's revocation callback (inside poll, before the group moves them on)."""
        taken = {(tp.topic, tp.partition) for tp in partitions}
        # offsets acknowledged while the group refused commits: this generation may still
        # commit them, the new owner then starts after them instead of reading them again
        refused = {key: offset for key, offset in self._refused.items() if key in taken}
        if refused:
            try:
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in refused.items()], asynchronous=False
                )
            except KafkaException as exc:
                names = sorted(f"{t}/{p}" for t, p in refused)
                self._uncommitted += names
                _logger.warning(
                    "%s: offsets of %s not committed at their revocation (%s); their new owner "
                    "reads those records again",
                    self.resource,
                    names,
                    exc.args[0].str() if exc.args else exc,
                )
        for key in taken:
            self._refused.pop(key, None)
        self._owned -= taken
        if self.on_rebalance == "raise" and not self._leaving and self._held is not None:
            # the eager protocol revokes every partition, then assigns the group's again (often
            # the same ones): whether any moved is known at the assignment, which the read waits for
            self._between = time.monotonic()
        self._call_hook(self._on_revoke, taken)

    def _await_assignment(self) -> list[Message]:
        """With ``on_rebalance="raise"``, after a revocation: poll until the group assigns again.

        Nothing may be acknowledged between the two, since a partition's new owner is not known:
        a consumer that saved and acknowledged records of a partition moving away could neither
        commit them (not its partition any more) nor give them back (they are in its state). So
        the read does not return until the assignment came (the messages of its poll are kept
        if nothing moved), or the rebalance took longer than ``max.poll.interval.ms``.
        """
        polled: list[Message] = []
        while self._between is not None and self._moved is None and not self.closed:
            if time.monotonic() - self._between > self._rebalance_timeout:
                self._moved = sorted(f"{t}/{p}" for t, p in self._held or ())
                break
            message = self._consumer.poll(0.1)
            if message is not None:
                polled.append(message)
        return polled

    @property
    def _rebalance_timeout(self) -> float:
        return float(self._consumer_config.get("max.poll.interval.ms", 300_000)) / 1000

    def _call_hook(self, hook: PartitionsHook | None, partitions: set[tuple[str, int]]) -> None:
        if hook is None or self._leaving:
            return
        try:
            hook(sorted(f"{t}/{p}" for t, p in partitions))
        except Exception as exc:  # raised from the read once librdkafka's callback returned
            self._hook_error = self._hook_error or exc

    def _after_poll(self) -> None:
        """Raise what the rebalance callbacks of the last poll found (they must not raise)."""
        if self._hook_error is not None:
            error, self._hook_error = self._hook_error, None
            raise error
        if self._moved is not None:
            self._stop_for_move()

    def _stop_for_move(self) -> None:
        """Leave the group (the new owner gets the partitions now) and end reading."""
        assert self._moved is not None
        self._leave(self._consumer)
        if self._uncommitted:
            committed = (
                f"The group refused the commit of what was acknowledged (saved) from "
                f"{', '.join(sorted(set(self._uncommitted)))}: its new owner reads those records "
                "again, so they may be counted twice. "
            )
        else:
            committed = "What was acknowledged (saved) is committed. "
        raise PartitionsRevokedError(
            f"{self.resource}: a rebalance of the group (a consumer joined or left) moved partitions "
            f"{', '.join(self._moved)} while this source's consumer keeps state per partition (a "
            "checkpointed stream's windows and progress), which cannot follow them to another "
            f"consumer; reading ends here. {committed}What was read since is not committed, and "
            "the new owner reads it. Run one consumer per checkpoint with a static assignment "
            "(assign=True, partitions=[...]) instead of several group members sharing partitions.",
            resource=self.group_id,
            partitions=self._moved,
        )

    def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
        # Poll, then drain: ``consume(n, timeout)`` alone waits for n messages or the whole
        # timeout, which puts a poll timeout (not max_latency) on every event's latency. What is
        # already fetched is taken at once; otherwise the read blocks only until the first
        # message arrives, then takes whatever came with it.
        if self._moved is not None:
            self._stop_for_move()  # the consumer left the group: nothing more is read
        try:
            polled = self._consumer.consume(num_messages=max_records, timeout=0)
            if not polled and self._moved is None and self._between is None:
                first = self._consumer.poll(timeout)
                if first is not None:
                    polled = [first]
                    if max_records > 1:
                        polled += self._consumer.consume(num_messages=max_records - 1, timeout=0)
            if self._between is not None:
                polled += self._await_assignment()
        except KafkaException as exc:
            raise translate_kafka_error(exc.args[0], self.resource) from exc
        # a rebalance inside this poll: what it returned is not handed out (never acknowledged,
        # the partitions' owner reads it)
        self._after_poll()
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
        if self._moved is not None:
            raise SourceClosedError(
                f"{self.resource}: a rebalance moved partitions {', '.join(self._moved)} before "
                "this batch was acknowledged; it is not, and their owner reads it again",
                resource=self.group_id,
            )
        # never move a partition's committed offset back (a batch acknowledged after a later one)
        offsets = {
            key: offset
            for key, offset in self._next_offsets(messages).items()
            if offset > self._committed.get(key, -1)
        }
        if not self._assign:
            # a partition that moved is read again by its new owner from the committed offset;
            # committing it from here could move that owner's offset back
            offsets = {key: offset for key, offset in offsets.items() if key in self._owned}
            for key, offset in self._refused.items():  # refused earlier, still ours: now
                if key in self._owned and offset > offsets.get(key, -1):
                    offsets[key] = offset
        if not offsets:
            return
        try:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
            )
        except KafkaException as exc:
            error = exc.args[0]
            if self._assign or not isinstance(error, KafkaError) or error.code() not in _REBALANCING:
                raise translate_kafka_error(error, self.resource) from exc
            # the group is rebalancing: commit these offsets when the partitions are revoked (this
            # generation still may), or with the next commit if they stay ours
            for key, offset in offsets.items():
                self._refused[key] = max(offset, self._refused.get(key, -1))
            _logger.info("%s: commit deferred during a rebalance (%s)", self.resource, error.str())
            return
        for key, offset in offsets.items():
            self._refused.pop(key, None)
            self._committed[key] = offset

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
        self._leave(self._consumer)

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
