"""How Arrow types and Snowflake column types map onto each other, both ways.

>>> snowflake_type("tags", pa.list_(pa.string())), snowflake_type("point", pa.struct({"x": pa.int8()}))
('ARRAY', 'OBJECT')
>>> result_arrow_type(0, 12, 2), quote_identifier("order")
(Decimal128Type(decimal128(12, 2)), '"order"')
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from sygnify.errors import SchemaError

__all__ = ["quote_identifier", "result_arrow_type", "snowflake_type", "widen_integers"]


def quote_identifier(name: str) -> str:
    """A double-quoted, case-preserving Snowflake identifier.

    >>> quote_identifier('a"b')
    '"a""b"'
    """
    return '"' + name.replace('"', '""') + '"'


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


def widen_integers(batch: pa.RecordBatch) -> pa.RecordBatch:
    # Snowflake sends each NUMBER(p,0) chunk in the narrowest int that fits; users get int64.
    if not any(pa.types.is_integer(t) and t != pa.int64() for t in batch.schema.types):
        return batch
    columns = [
        column.cast(pa.int64()) if pa.types.is_integer(column.type) else column for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
