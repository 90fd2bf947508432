"""Decoders turn a message's bytes into one record (a mapping of field → value).

A decoder is any ``Callable[[bytes], Mapping[str, Any]]``; whatever it raises makes the
message a poison message (sent to the dead-letter target with the error as the reason).

>>> json_decoder(b'{"sensor": "t1", "value": 21.5}')
{'sensor': 't1', 'value': 21.5}

Protobuf and Avro decoders are built from a message class or a writer schema::

    decode = protobuf_decoder(SensorReading)      # a generated protobuf class
    decode = avro_decoder(writer_schema)          # needs fastavro

The default JSON decoding also has a bulk form, :func:`decode_json_batch`: a micro-batch's
payloads are read by one Arrow JSON read instead of one ``json.loads`` and one dict per message.
Sources use it for the default decoder and fall back to the message-by-message path for any
batch it cannot decode exactly as that path would (a malformed or mistyped record, see there).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from sygnify.errors import ConfigurationError

__all__ = ["Decoder", "avro_decoder", "decode_json_batch", "json_decoder", "protobuf_decoder"]

Decoder = Callable[[bytes], Mapping[str, Any]]


def json_decoder(payload: bytes) -> Mapping[str, Any]:
    """Decode one JSON object (the default decoder)."""
    record = json.loads(payload)
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    return record


#: Field types a bulk read converts exactly as ``json.loads`` and ``pa.RecordBatch.from_pylist`` do
#: (a schema with others, such as timestamps Arrow's JSON reader parses from strings where the
#: per-message path refuses them, is decoded message by message).
_BULK_TYPES = (
    pa.types.is_boolean,
    pa.types.is_integer,
    pa.types.is_float32,
    pa.types.is_float64,
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_null,
)
#: From this magnitude on, a float column may hold a JSON integer that Arrow refuses to make a
#: double from a Python int (not exactly representable) or to hold at all (beyond int64), so the
#: per-message path dead-letters it; Arrow's JSON reader would silently round it to a double.
_EXACT_LIMIT = 2.0**53


def decode_json_batch(payloads: Sequence[bytes], schema: pa.Schema | None = None) -> pa.RecordBatch | None:
    """The payloads (one JSON object each) as one Arrow batch, or None to decode them one by one.

    One Arrow JSON read over the payloads joined with newlines. The batch equals what
    ``json.loads`` per payload and ``pa.RecordBatch.from_pylist`` (with ``schema``) give; where
    that cannot be guaranteed the answer is None and the caller takes the per-message path,
    which also finds the bad records and their reasons: a payload that is not one
    newline-free JSON object starting with ``{`` and ending with ``}``, invalid UTF-8, a value
    that does not convert, a number of magnitude 2**53 or more, a string Arrow would read as a timestamp
    (re-read as a string), a schema with types other than booleans, integers, floats and strings.

    >>> decode_json_batch([b'{"t": 20.5, "s": "a"}', b'{"t": 21}']).to_pydict()
    {'t': [20.5, 21.0], 's': ['a', None]}
    >>> decode_json_batch([b'{"t": 20.5}', b'{"t": "hot"}']) is None
    True
    """
    count = len(payloads)
    if not count or (schema is not None and not _bulk_schema(schema)):
        return None
    joined = b"\n".join(payloads)
    # every payload one line holding one object: each newline is a separator between "}" and "{"
    separators = count - 1
    if (
        joined[:1] != b"{"
        or joined[-1:] != b"}"
        or joined.count(b"\n") != separators
        or joined.count(b"}\n{") != separators
    ):
        return None
    try:
        joined.decode("utf-8")  # Arrow's reader does not validate UTF-8; json.loads refuses it
        table = _read_json(joined, schema)
        if schema is None and _has_timestamp(table.schema):
            # Arrow infers timestamps from ISO strings; json.loads keeps them strings
            table = _read_json(joined, _timestamps_as_strings(table.schema))
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError):
        return None
    if table.num_rows != count or not all(_exact_floats(column) for column in table.columns):
        return None
    if schema is not None:
        return pa.RecordBatch.from_arrays(
            [table.column(f.name).combine_chunks() for f in schema], schema=schema
        )
    combined = table.combine_chunks()
    return pa.RecordBatch.from_arrays([c.chunk(0) for c in combined.columns], schema=combined.schema)


def _read_json(joined: bytes, schema: pa.Schema | None) -> pa.Table:
    parse = (
        pa_json.ParseOptions()
        if schema is None
        else pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    )
    # one block: a type inferred from the whole batch, never one per block
    read = pa_json.ReadOptions(use_threads=False, block_size=max(len(joined) + 1, 1 << 16))
    return pa_json.read_json(pa.py_buffer(joined), read_options=read, parse_options=parse)


def _bulk_schema(schema: pa.Schema) -> bool:
    return all(any(check(f.type) for check in _BULK_TYPES) for f in schema)


def _has_timestamp(schema: pa.Schema) -> bool:
    return any(_timestamps_as_strings_type(f.type) != f.type for f in schema)


def _timestamps_as_strings(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_type(_timestamps_as_strings_type(f.type)) for f in schema])


def _timestamps_as_strings_type(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
        return pa.string()
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_timestamps_as_strings_type(kind.value_type)))
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_timestamps_as_strings_type(f.type)) for f in kind])
    return kind


def _exact_floats(column: pa.ChunkedArray | pa.Array) -> bool:
    """False if a float (at any depth) is ±2**53 or beyond: maybe an integer json.loads keeps exact."""
    kind = column.type
    if pa.types.is_floating(kind):
        if column.null_count == len(column):
            return True
        return not pc.any(pc.greater_equal(pc.abs(column), _EXACT_LIMIT)).as_py()
    if pa.types.is_list(kind) or pa.types.is_struct(kind):
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        for chunk in chunks:
            children = [chunk.flatten()] if pa.types.is_list(kind) else chunk.flatten()
            if not all(_exact_floats(child) for child in children):
                return False
    return True


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
