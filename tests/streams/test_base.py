"""BaseSource machinery without a server: decoding, schema, dead letters, backpressure, reconnect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pytest

from sygnify.errors import ConnectionFailedError, DataQualityError, PluginNotFoundError, SchemaError
from sygnify.resilience import RetryPolicy
from sygnify.streams import (
    SOURCES,
    BaseSource,
    RawMessage,
    StreamSource,
    build_batch,
    open_source,
)
from sygnify.streams.base import SourceConfig


class FakeConfig(SourceConfig):
    payloads: list[bytes]
    failures: int = 0


class FakeSource(BaseSource):
    name = "fake"
    config_model = FakeConfig

    def __init__(self, payloads: list[bytes], *, failures: int = 0, **options: Any) -> None:
        super().__init__(**options)
        self.payloads, self.failures = list(payloads), failures
        self.acked: list[int] = []
        self.reconnects = 0
        self.closed_connections = 0
        self._offset = 0

    def _fetch(self, max_records: int, timeout: float) -> list[RawMessage]:
        if self.failures:
            self.failures -= 1
            raise ConnectionFailedError("connection reset")
        taken = self.payloads[:max_records]
        self.payloads = self.payloads[max_records:]
        messages = [RawMessage(p, {"offset": self._offset + i}) for i, p in enumerate(taken)]
        self._offset += len(taken)
        return messages

    def _acknowledge(self, messages: Sequence[RawMessage]) -> None:
        self.acked += [m.position["offset"] for m in messages]

    def _reconnect(self) -> None:
        self.reconnects += 1

    def _close(self) -> None:
        self.closed_connections += 1


def test_reconnects_with_backoff_from_the_retry_policy() -> None:
    slept: list[float] = []
    retry = RetryPolicy(max_attempts=4, initial_delay=0.5, jitter=0, sleep=slept.append)
    source = FakeSource([b'{"a": 1}'], failures=2, retry=retry)
    batch = source.read()
    assert batch is not None
    assert batch.batch.to_pydict() == {"a": [1]}
    assert slept == [0.5, 1.0]
    assert source.reconnects == 2


def test_gives_up_after_the_last_attempt() -> None:
    retry = RetryPolicy(max_attempts=2, initial_delay=0, jitter=0, sleep=lambda _: None)
    source = FakeSource([], failures=5, retry=retry)
    with pytest.raises(ConnectionFailedError):
        source.read()


def test_failing_dead_letter_target_keeps_the_batch_unacknowledged() -> None:
    def broken(_letters: list[dict[str, Any]]) -> None:
        raise OSError("disk full")

    source = FakeSource([b'{"a": 1}', b"poison"], dead_letter=broken)
    with pytest.raises(DataQualityError, match="dead-letter"):
        source.read()
    assert source.acked == []


def test_dead_letters_carry_payload_reason_and_position() -> None:
    letters: list[dict[str, Any]] = []
    source = FakeSource([b"[1, 2]", b'{"a": 1}'], dead_letter=letters.extend)
    batch = source.read()
    assert batch is not None
    assert letters == batch.dead_letters
    assert letters[0]["payload"] == b"[1, 2]"
    assert letters[0]["offset"] == 0
    assert "not a record" in letters[0]["reason"] or "JSON object" in letters[0]["reason"]
    batch.ack()
    assert source.acked == [0, 1]  # the poison message is acknowledged with its batch


def test_custom_decoder_and_metadata() -> None:
    source = FakeSource([b"1,2"], decoder=lambda p: dict(zip("xy", map(int, p.split(b",")))))
    batch = source.read()
    assert batch is not None
    assert batch.batch.to_pydict() == {"x": [1], "y": [2]}
    assert batch.metadata["source"] == "fake"
    assert batch.metadata["messages"] == 1


def test_backpressure_waits_for_acks_then_resumes() -> None:
    source = FakeSource([b'{"a": %d}' % i for i in range(4)], max_unacked_batches=2)
    first, second = source.read(max_records=1), source.read(max_records=1)
    assert first is not None
    assert second is not None
    assert source.read(max_records=1, timeout=0.01) is None
    second.ack()
    assert source.read(max_records=1, timeout=0.01) is not None


def test_close_stops_iteration_and_releases_once() -> None:
    source = FakeSource([b'{"a": 1}'] * 5, batch_size=2, poll_timeout=0.01)
    seen = 0
    with source:
        for batch in source:
            seen += batch.batch.num_rows
            batch.ack()
            if seen >= 4:
                source.close()
    assert seen == 4
    assert source.closed_connections == 1
    assert source.read() is None


def test_build_batch_without_schema_rejects_inconsistent_types() -> None:
    with pytest.raises(SchemaError, match="schema="):
        build_batch([{"a": 1}, {"a": "x"}], None)
    batch, bad = build_batch([{"a": 1}], pa.schema([("a", pa.int32())]))
    assert batch.schema.field("a").type == pa.int32()
    assert bad == []


def test_registry_knows_every_builtin_source_and_names_the_extra() -> None:
    assert {"kafka", "redis", "nats", "mqtt"} <= set(SOURCES.names())
    for name in ("kafka", "redis", "nats", "mqtt"):
        assert issubclass(SOURCES.load(name), BaseSource)  # type: ignore[arg-type]
    with pytest.raises(PluginNotFoundError, match=r"available: .*redis"):
        SOURCES.load("carrier-pigeon")


def test_open_source_and_protocol() -> None:
    SOURCES.register("fake", FakeSource)
    try:
        source = open_source("fake", payloads=[b'{"a": 1}'], failures=0)
        assert isinstance(source, StreamSource)
        assert isinstance(source, FakeSource)
        assert source.payloads == [b'{"a": 1}']
        source.close()
    finally:
        SOURCES.unregister("fake")


def test_a_source_without_its_own_config_model_is_built_the_legacy_way() -> None:
    class LegacySource(FakeSource):
        name = "legacy"
        config_model = SourceConfig

    SOURCES.register("legacy", LegacySource)
    try:
        with pytest.warns(DeprecationWarning, match="legacy constructor called with keyword options"):
            source = open_source("legacy", payloads=[b'{"a": 1}'])
        assert isinstance(source, LegacySource)
        assert source.payloads == [b'{"a": 1}']
        source.close()
    finally:
        SOURCES.unregister("legacy")


def test_protobuf_decoder_reads_a_message() -> None:
    struct_pb2 = pytest.importorskip("google.protobuf.struct_pb2")
    from sygnify.streams import protobuf_decoder

    message = struct_pb2.Struct()
    message.update({"value": 2.5, "sensor": "t1"})
    assert protobuf_decoder(struct_pb2.Struct)(message.SerializeToString()) == {"value": 2.5, "sensor": "t1"}


def test_avro_decoder_reads_confluent_framed_and_plain_records() -> None:
    fastavro = pytest.importorskip("fastavro")
    import io

    from sygnify.streams.decoding import avro_decoder

    schema = {
        "type": "record",
        "name": "Reading",
        "fields": [{"name": "sensor", "type": "string"}, {"name": "value", "type": "double"}],
    }
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), {"sensor": "t1", "value": 2.5})
    body = buffer.getvalue()
    framed = b"\x00" + (42).to_bytes(4, "big") + body
    assert avro_decoder(schema)(framed) == {"sensor": "t1", "value": 2.5}
    assert avro_decoder(schema, confluent_framing=False)(body) == {"sensor": "t1", "value": 2.5}
    with pytest.raises(ValueError, match="magic byte"):
        avro_decoder(schema)(body)
