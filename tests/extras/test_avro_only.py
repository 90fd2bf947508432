"""``pip install "sygnify[avro]"`` alone decodes Avro records read from a stream source.

The records are Confluent-framed, as a schema-registry producer writes them, and come from
sygnify's in-process log (the avro extra brings no stream client). In the ``avro``-only
session (``SYGNIFY_EXTRA_ONLY=avro``: sygnify[avro] and pytest, nothing else) it also checks
that no other extra's packages are there.
"""

from __future__ import annotations

import io
import struct

import fastavro
import pytest

from sygnify.streams.decoding import avro_decoder
from sygnify.streams.memory import MemoryLog, MemorySource
from tests.extras._only import check_alone, only_extra

SCHEMA = {
    "type": "record",
    "name": "Reading",
    "fields": [{"name": "sensor", "type": "string"}, {"name": "value", "type": "double"}],
}


def framed(record: dict[str, object], schema_id: int = 1) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(SCHEMA), record)
    return b"\x00" + struct.pack(">I", schema_id) + body.getvalue()


@pytest.mark.skipif(only_extra() != "avro", reason="only in the avro-only environment")
def test_the_environment_holds_the_avro_extra_alone() -> None:
    check_alone("avro")


def test_decode_avro_records_from_a_stream_source_with_the_avro_extra() -> None:
    log = MemoryLog(
        [framed({"sensor": "t1", "value": 2.5}), framed({"sensor": "t2", "value": -1.0}), b"junk"]
    )
    batch = MemorySource(log, decoder=avro_decoder(SCHEMA)).read(max_records=10)
    assert batch is not None
    assert batch.batch.to_pydict() == {"sensor": ["t1", "t2"], "value": [2.5, -1.0]}
    assert len(batch.dead_letters) == 1  # not Avro: a poison message, not a crash
