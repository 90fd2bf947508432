"""How Arrow types and Snowflake column types map onto each other, both ways.

>>> snowflake_type("tags", pa.list_(pa.string())), snowflake_type("point", pa.struct({"x": pa.int8()}))
('ARRAY', 'OBJECT')
>>> result_arrow_type(0, 12, 2), widen_integers(pa.table({"n": pa.array([1], pa.int8())})).schema.types
(Decimal128Type(decimal128(12, 2)), [DataType(int64)])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pyarrow as pa

from sygnify.errors import SchemaError

__all__ = ["described_schema", "result_arrow_type", "snowflake_type", "widen_integers"]

Data = TypeVar("Data", pa.Table, pa.RecordBatch)


_SNOWFLAKE_TYPES: list[tuple[Callable[[pa.DataType], bool], str]] = [
    (pa.types.is_boolean, "BOOLEAN"),
    (pa.types.is_integer, "INTEGER"),
    (pa.types.is_floating, "FLOAT"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t), "TEXT"),
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "BINARY"),
    (pa.types.is_date, "DATE"),
    (pa.types.is_time, "TIME"),
    (lambda t: pa.types.is_list(t) or pa.types.is_large_list(t), "ARRAY"),
    (pa.types.is_struct, "OBJECT"),
]


def snowflake_type(name: str, arrow_type: pa.DataType) -> str:
    """The Snowflake column type ``write()`` uses for an Arrow type.

    >>> snowflake_type("x", pa.decimal128(12, 2)), snowflake_type("t", pa.timestamp("us", tz="UTC"))
    ('NUMBER(12,2)', 'TIMESTAMP_TZ')
    """
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_decimal(arrow_type) and arrow_type.precision <= 38:
        return f"NUMBER({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP_TZ" if arrow_type.tz else "TIMESTAMP_NTZ"
    for check, sf_type in _SNOWFLAKE_TYPES:
        if check(arrow_type):
            return sf_type
    raise SchemaError(
        f"column {name!r} has Arrow type {arrow_type}, which has no Snowflake type", resource=name
    )


def result_arrow_type(code: int, precision: int | None, scale: int | None) -> pa.DataType:
    """The Arrow type the Snowflake connector produces for a result column's type code."""
    if code == 0:  # FIXED
        return pa.int64() if not scale else pa.decimal128(precision or 38, scale)
    mapping: dict[int, pa.DataType] = {
        1: pa.float64(),
        2: pa.string(),
        3: pa.date32(),
        4: pa.timestamp("ns"),
        5: pa.string(),
        6: pa.timestamp("ns", tz="UTC"),
        7: pa.timestamp("ns", tz="UTC"),
        8: pa.timestamp("ns"),
        9: pa.string(),
        10: pa.string(),
        11: pa.binary(),
        12: pa.time64("ns"),
        13: pa.bool_(),
    }
    return mapping.get(code, pa.string())


def described_schema(description: Sequence[Any] | None) -> pa.Schema:
    """The Arrow schema of a result, from the connector's column metadata (``cursor.description``
    or ``cursor.describe(sql)``), as :func:`widen_integers` leaves it."""
    return pa.schema(
        [
            (column.name, result_arrow_type(column.type_code, column.precision, column.scale))
            for column in description or []
        ]
    )


def widen_integers(data: Data) -> Data:
    """``data`` with every integer column as ``int64``; free when there is none."""
    # Snowflake sends each NUMBER(p,0) chunk in the narrowest int that fits; users get int64.
    if not any(pa.types.is_integer(t) and t != pa.int64() for t in data.schema.types):
        return data
    columns = [
        column.cast(pa.int64()) if pa.types.is_integer(column.type) else column for column in data.columns
    ]
    return type(data).from_arrays(columns, names=data.schema.names)
