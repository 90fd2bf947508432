"""The Arrow types PostgreSQL results come back as.

The ADBC driver reads ``COPY ... (FORMAT binary)`` straight into Arrow. Most types map
one to one (int2/4/8, float4/8, text, bool, bytea, date, time, timestamp[tz] as
microseconds, arrays as lists, uuid and json/jsonb as Arrow's canonical ``arrow.uuid`` /
``arrow.json`` extension types). ``numeric`` arrives as an opaque string type; it becomes
``decimal128(p, s)`` when the column declares a precision of at most 38, and a plain
string otherwise (an unconstrained ``numeric`` may not fit a decimal: cast it in SQL,
``amount::numeric(18, 2)`` or ``amount::float8``, to choose).

>>> described = {"POSTGRESQL:type": "numeric", "POSTGRESQL:typmod": "655366"}
>>> numeric = pa.field("n", pa.string(), metadata=described)
>>> result_type(numeric)
Decimal128Type(decimal128(10, 2))
"""

from __future__ import annotations

from typing import TypeVar

import pyarrow as pa

__all__ = ["normalize", "result_type"]

Data = TypeVar("Data", pa.Table, pa.RecordBatch)

_TYPE_KEY = b"POSTGRESQL:type"
_TYPMOD_KEY = b"POSTGRESQL:typmod"
_VARHDRSZ = 4  # PostgreSQL stores numeric(p, s) as typmod ((p << 16) | s) + 4


def _is_numeric(field: pa.Field) -> bool:
    return bool(field.metadata) and field.metadata.get(_TYPE_KEY) == b"numeric"


def result_type(field: pa.Field) -> pa.DataType:
    """The Arrow type sygnify gives a result column the driver described as ``field``."""
    if not _is_numeric(field):
        return field.type
    typmod = int(field.metadata.get(_TYPMOD_KEY, b"-1"))
    if typmod >= _VARHDRSZ:
        precision, scale = (typmod - _VARHDRSZ) >> 16, (typmod - _VARHDRSZ) & 0xFFFF
        if 0 < precision <= 38 and scale <= precision:
            return pa.decimal128(precision, scale)
    return pa.string()


def _storage(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([chunk.storage for chunk in column.chunks], column.type.storage_type)
    return column.storage


def normalize(data: Data) -> Data:
    """``data`` with the driver's opaque types replaced (see the module docstring); free when none."""
    schema = data.schema
    if not any(_is_numeric(field) for field in schema):
        return data
    columns = []
    fields = []
    for index, field in enumerate(schema):
        column = data.column(index)
        if _is_numeric(field):
            target = result_type(field)
            if isinstance(field.type, pa.ExtensionType):
                column = _storage(column)
            column = column.cast(target)
            field = pa.field(field.name, target, field.nullable, field.metadata)
        columns.append(column)
        fields.append(field)
    return type(data).from_arrays(columns, schema=pa.schema(fields, schema.metadata))
