"""How Python values and Arrow types become BigQuery types: typed query parameters and table schemas.

Parameters are typed from their Python values, so user values always travel as typed
query parameters, never inside the SQL text:

    >>> import datetime as dt
    >>> typed = query_parameters({"d": dt.date(2024, 1, 2), "n": 1})
    >>> [p.to_api_repr()["parameterType"]["type"] for p in typed]
    ['DATE', 'INT64']

An integer outside INT64 is refused before any job is sent:

    >>> query_parameters({"big": 2**70})
    Traceback (most recent call last):
    ...
    sygnify.errors.ConfigurationError: parameter big = 1180591620717411303424 is outside INT64 ...

A table created by ``write()`` gets its schema from the data's Arrow schema:

    >>> fields = arrow_to_bigquery_schema(pa.schema({"ts": pa.timestamp("us", "UTC")}))
    >>> [(f.name, f.field_type) for f in fields]
    [('ts', 'TIMESTAMP')]

Results come back with BigQuery's types in plain Arrow: the client marks DATETIME, JSON and
GEOGRAPHY columns with ``google:sqlType:*`` extension metadata, which Polars would read as
opaque extension types; :func:`plain_arrow` drops it, leaving the storage types
(DATETIME a timestamp without time zone, JSON and GEOGRAPHY strings):

    >>> marked = pa.schema([pa.field("d", pa.timestamp("us"), metadata={
    ...     b"ARROW:extension:name": b"google:sqlType:datetime"})])
    >>> plain_arrow(marked.empty_table()).schema.field("d").metadata is None
    True
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any, TypeVar

import pyarrow as pa
from google.cloud import bigquery

from sygnify.connectors.base import QueryParams
from sygnify.errors import ConfigurationError, SchemaError

__all__ = ["arrow_to_bigquery_schema", "plain_arrow", "query_parameter", "query_parameters"]

_ParamType = bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter | bigquery.StructQueryParameter
_INT64 = (-(2**63), 2**63 - 1)
#: Field metadata keys of Arrow extension types (the client's ``google:sqlType:*`` marks).
_EXTENSION_KEYS = (b"ARROW:extension:name", b"ARROW:extension:metadata")
Arrow = TypeVar("Arrow", pa.Table, pa.RecordBatch)


def _scalar_type(value: Any, label: str) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ConfigurationError(
                f"parameter {label} = {value} is outside INT64 ({_INT64[0]} to {_INT64[1]}); pass a "
                "decimal.Decimal for NUMERIC/BIGNUMERIC, or a string",
                resource=label,
            )
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, decimal.Decimal):
        exponent = value.as_tuple().exponent
        digits = len(value.as_tuple().digits)
        scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        return "NUMERIC" if scale <= 9 and digits - scale <= 29 else "BIGNUMERIC"
    if isinstance(value, str) or value is None:
        return "STRING"
    if isinstance(value, bytes):
        return "BYTES"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo is not None else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, dt.time):
        return "TIME"
    raise ConfigurationError(
        f"cannot pass a {type(value).__name__} as BigQuery query parameter {label}; pass a "
        "google.cloud.bigquery.ScalarQueryParameter with an explicit type",
        resource=label,
    )


def query_parameter(name: str | None, value: Any, *, label: str | None = None) -> _ParamType:
    """A typed BigQuery query parameter for a Python value (``None`` is a NULL STRING).

    ``label`` names the parameter in errors (default: ``name``, else ``?``).

    >>> query_parameter("ids", [1, 2]).to_api_repr()["parameterType"]
    {'type': 'ARRAY', 'arrayType': {'type': 'INT64'}}
    """
    label = label or name or "?"
    if isinstance(value, _ParamType):
        return value
    if isinstance(value, list | tuple):
        items = [item for item in value if item is not None]
        if not items:
            raise ConfigurationError(
                f"parameter {label} is an empty or all-NULL list, so its element type is unknown; "
                "pass a google.cloud.bigquery.ArrayQueryParameter",
                resource=label,
            )
        element = _scalar_type(items[0], label)
        for item in items[1:]:
            _scalar_type(item, label)  # every element must fit (an INT64 past 2**63 is refused)
        return bigquery.ArrayQueryParameter(name, element, list(value))
    if isinstance(value, Mapping):
        return bigquery.StructQueryParameter(
            name, *(query_parameter(str(k), v, label=f"{label}.{k}") for k, v in value.items())
        )
    return bigquery.ScalarQueryParameter(name, _scalar_type(value, label), value)


def query_parameters(params: QueryParams) -> list[_ParamType]:
    """Typed parameters for a mapping (``@name``) or a sequence (``?``); ``None`` is none.

    >>> [p.name for p in query_parameters([1, "a"])]
    [None, None]
    """
    if params is None:
        return []
    if isinstance(params, Mapping):
        return [query_parameter(str(name), value) for name, value in params.items()]
    if isinstance(params, str | bytes):
        raise ConfigurationError("params must be a sequence (for ?) or a mapping (for @name), not a string")
    return [query_parameter(None, value, label=f"#{index + 1}") for index, value in enumerate(params)]


def _field(name: str, arrow_type: pa.DataType, mode: str = "NULLABLE") -> bigquery.SchemaField:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _field(name, arrow_type.value_type, "REPEATED")
    if pa.types.is_struct(arrow_type):
        fields = [
            _field(arrow_type.field(i).name, arrow_type.field(i).type) for i in range(arrow_type.num_fields)
        ]
        return bigquery.SchemaField(name, "RECORD", mode=mode, fields=fields)
    if pa.types.is_decimal(arrow_type):
        small = arrow_type.scale <= 9 and arrow_type.precision - arrow_type.scale <= 29
        return bigquery.SchemaField(name, "NUMERIC" if small else "BIGNUMERIC", mode=mode)
    checks: list[tuple[Any, str]] = [
        (pa.types.is_boolean, "BOOL"),
        (pa.types.is_integer, "INT64"),
        (pa.types.is_floating, "FLOAT64"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t), "STRING"),
        (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "BYTES"),
        (pa.types.is_date, "DATE"),
        (pa.types.is_time, "TIME"),
    ]
    if pa.types.is_timestamp(arrow_type):
        return bigquery.SchemaField(name, "TIMESTAMP" if arrow_type.tz else "DATETIME", mode=mode)
    if getattr(arrow_type, "extension_name", None) == "arrow.json":
        return bigquery.SchemaField(name, "JSON", mode=mode)
    for check, bq_type in checks:
        if check(arrow_type):
            return bigquery.SchemaField(name, bq_type, mode=mode)
    raise SchemaError(
        f"column {name!r} has Arrow type {arrow_type}, which has no BigQuery type", resource=name
    )


def arrow_to_bigquery_schema(schema: pa.Schema) -> list[bigquery.SchemaField]:
    """The BigQuery table schema for an Arrow schema (used when ``write()`` creates a table).

    >>> fields = arrow_to_bigquery_schema(pa.schema({"x": pa.list_(pa.int32())}))
    >>> [(f.name, f.field_type, f.mode) for f in fields]
    [('x', 'INT64', 'REPEATED')]
    """
    return [_field(f.name, f.type) for f in schema]


def _plain_field(field: pa.Field) -> pa.Field:
    plain = field.with_type(_plain_type(field.type))
    metadata = field.metadata
    if metadata and metadata.get(_EXTENSION_KEYS[0], b"").startswith(b"google:"):
        rest = {key: value for key, value in metadata.items() if key not in _EXTENSION_KEYS}
        plain = plain.with_metadata(rest) if rest else plain.remove_metadata()
    return plain


def _plain_type(arrow_type: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(arrow_type):
        return pa.struct([_plain_field(arrow_type.field(i)) for i in range(arrow_type.num_fields)])
    if pa.types.is_list(arrow_type):
        return pa.list_(_plain_field(arrow_type.value_field))
    if pa.types.is_large_list(arrow_type):
        return pa.large_list(_plain_field(arrow_type.value_field))
    return arrow_type


def plain_arrow(data: Arrow) -> Arrow:
    """``data`` without the client's ``google:sqlType:*`` extension marks (at any depth).

    The values are untouched: only field metadata changes, so this is zero-copy.
    """
    schema = pa.schema([_plain_field(field) for field in data.schema], metadata=data.schema.metadata)
    if schema.equals(data.schema, check_metadata=True):
        return data
    return data.cast(schema)
