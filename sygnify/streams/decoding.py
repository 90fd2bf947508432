"""Decoders turn a message's bytes into one record (a mapping of field → value).

A decoder is any ``Callable[[bytes], Mapping[str, Any]]``; whatever it raises makes the
message a poison message (sent to the dead-letter target with the error as the reason).

>>> json_decoder(b'{"sensor": "t1", "value": 21.5}')
{'sensor': 't1', 'value': 21.5}

Protobuf and Avro decoders are built from a message class or a writer schema::

    decode = protobuf_decoder(SensorReading)      # a generated protobuf class
    decode = avro_decoder(writer_schema)          # needs fastavro
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from typing import Any

from sygnify.errors import ConfigurationError

__all__ = ["Decoder", "avro_decoder", "json_decoder", "protobuf_decoder"]

Decoder = Callable[[bytes], Mapping[str, Any]]


def json_decoder(payload: bytes) -> Mapping[str, Any]:
    """Decode one JSON object (the default decoder)."""
    record = json.loads(payload)
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    return record


def avro_decoder(schema: Mapping[str, Any], *, confluent_framing: bool = True) -> Decoder:
    """A decoder for Avro records written with ``schema`` (needs ``fastavro``).

    With ``confluent_framing`` the 5-byte Confluent Schema Registry header (magic byte + schema
    id) is skipped; sygnify does not fetch schemas from a registry: pass the writer schema.
    """
    try:
        import fastavro  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise ConfigurationError("avro_decoder needs fastavro: pip install fastavro") from exc
    parsed = fastavro.parse_schema(dict(schema))

    def decode(payload: bytes) -> Mapping[str, Any]:
        if confluent_framing:
            if payload[:1] != b"\x00" or len(payload) < 5:
                raise ValueError("missing the Confluent wire-format header (magic byte 0)")
            payload = payload[5:]
        record = fastavro.schemaless_reader(io.BytesIO(payload), parsed)
        if not isinstance(record, dict):
            raise ValueError("the Avro schema does not describe a record")
        return record

    return decode


def protobuf_decoder(message_type: Any, *, preserving_proto_field_name: bool = True) -> Decoder:
    """A decoder for Protobuf messages of ``message_type`` (a generated message class)."""
    from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped, unused-ignore]

    def decode(payload: bytes) -> Mapping[str, Any]:
        message = message_type()
        message.ParseFromString(payload)
        record: dict[str, Any] = MessageToDict(
            message, preserving_proto_field_name=preserving_proto_field_name
        )
        return record

    return decode
