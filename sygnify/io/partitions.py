"""Hive partitions: the one encoding of partition values in paths, and the one decoding.

A partitioned dataset keeps each partition column in its directory names
(``cat=a%20b/year=2026/part-….parquet``). Writing encodes every value with
:func:`encode_value`: the characters Hive and Spark escape are percent-encoded, a null is
``__HIVE_DEFAULT_PARTITION__``, an empty string is an empty segment (``cat=``, which every
reader here decodes as ``''``). The partition columns' Arrow types are stored beside the
parts, in ``_sygnify_partitions.json`` at the dataset root (a hidden name, so the one glob
of :mod:`sygnify.io.files` never reads it as data).

Reading decides the partition schema once, with :func:`partition_schema`: ``hive_schema=``
first, then the stored types, then inference that is the same for every reader (``int64``
when every value is an integer that fits and prints back the same, else ``string``; so
``'007'`` stays a string). pyarrow (:func:`hive_partitioning`), Polars
(:func:`polars_hive_schema`) and DuckDB (:func:`duckdb_hive_types`) are then handed that
schema, and all of them percent-decode and map the null sentinel the same way::

    >>> import datetime
    >>> encode_value("a b/c=100%"), encode_value(None), encode_value(3_000_000_000)
    ('a b%2Fc%3D100%25', '__HIVE_DEFAULT_PARTITION__', '3000000000')
    >>> decode_value("a b%2Fc%3D100%25", pa.string()), decode_value(encode_value(None), pa.int64())
    ('a b/c=100%', None)
    >>> schema = partition_schema(["cat=a/n=007/d=2024-01-02/p.parquet", "cat=b/n=1/d=x/p.parquet"])
    >>> [str(field.type) for field in schema]
    ['string', 'string', 'string']
    >>> partition_schema(["n=3000000000/p.parquet"], hive_schema={"n": "int64"}).field("n").type
    DataType(int64)

The one value that does not round-trip is the literal string ``'__HIVE_DEFAULT_PARTITION__'``,
which reads back as null (as in Hive and Spark).
"""

from __future__ import annotations

import base64
import datetime
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from sygnify.errors import ConfigurationError, SchemaError

__all__ = [
    "NULL_PARTITION",
    "PARTITIONS_FILE",
    "HiveSchema",
    "PartitionColumns",
    "decode_value",
    "decoded_partitions",
    "duckdb_hive_types",
    "encode_value",
    "hive_partitioning",
    "local_partition_schema",
    "partition_expression",
    "partition_schema",
    "partition_values",
    "partitions_file_text",
    "pinned_hive_types",
    "polars_hive_schema",
    "read_partitions_file",
    "split_partitions",
    "with_partition_columns",
]

#: The directory value of a null partition (Hive's and Spark's).
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
#: The file at a dataset's root that holds its partition columns' Arrow types.
PARTITIONS_FILE = "_sygnify_partitions.json"

#: ``hive_schema=``: a schema, or a mapping of column name to Arrow type (or type name).
HiveSchema: TypeAlias = pa.Schema | Mapping[str, "pa.DataType | str"]

# Exactly what Hive's and Spark's FileUtils.escapePathName escape (control characters too).
_ESCAPED = frozenset("\"#%'*/:=?\\\x7f{[]^") | frozenset(chr(code) for code in range(0x20))
_INT64 = (-(2**63), 2**63 - 1)

_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.large_string(): "VARCHAR",
    pa.bool_(): "BOOLEAN",
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.uint8(): "UTINYINT",
    pa.uint16(): "USMALLINT",
    pa.uint32(): "UINTEGER",
    pa.uint64(): "UBIGINT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.date32(): "DATE",
}


def _escape(text: str) -> str:
    return "".join(f"%{ord(char):02X}" if char in _ESCAPED else char for char in text)


def encode_value(value: Any) -> str:
    """The directory value of one partition value (``name=<this>``).

    >>> encode_value(True), encode_value(datetime.date(2026, 1, 2)), encode_value("")
    ('true', '2026-01-02', '')
    """
    if value is None:
        return NULL_PARTITION
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _escape(value)
    if isinstance(value, int | datetime.date):
        return _escape(value.isoformat() if isinstance(value, datetime.date) else str(value))
    return _escape(str(pa.scalar(value).cast(pa.string()).as_py()))


def decode_value(raw: str, type: pa.DataType) -> Any:
    """The value of the directory value ``raw`` as ``type`` (the inverse of :func:`encode_value`).

    >>> decode_value("true", pa.bool_()), decode_value("2026-01-02", pa.date32())
    (True, datetime.date(2026, 1, 2))
    """
    if raw == NULL_PARTITION:
        return None
    text = unquote(raw)
    if pa.types.is_string(type) or pa.types.is_large_string(type):
        return text
    try:
        if pa.types.is_integer(type):
            return pa.scalar(int(text), type).as_py()
        if pa.types.is_boolean(type):
            return {"true": True, "false": False}[text.lower()]
        return pa.scalar(text).cast(type).as_py()
    except (ValueError, KeyError, OverflowError, pa.ArrowException) as exc:
        raise SchemaError(
            f"partition value {text!r} is not a {type}; pass hive_schema= with the column's type"
        ) from exc


def partition_values(paths: Sequence[str]) -> list[dict[str, str]]:
    """The raw ``name=value`` directory segments of each path (relative to the dataset root).

    >>> partition_values(["cat=a%20b/year=2026/p.parquet", "p.parquet"])
    [{'cat': 'a%20b', 'year': '2026'}, {}]
    """
    values = []
    for path in paths:
        segments = path.strip("/").split("/")[:-1]
        values.append(
            dict(segment.split("=", 1) for segment in segments if "=" in segment and segment[0] != "=")
        )
    return values


def _infer(raws: list[str]) -> pa.DataType:
    texts = [unquote(raw) for raw in raws if raw != NULL_PARTITION]
    for text in texts:
        try:
            number = int(text)
        except ValueError:
            return pa.string()
        if str(number) != text or not _INT64[0] <= number <= _INT64[1]:
            return pa.string()
    return pa.int64() if texts else pa.string()


def _pinned(hive_schema: HiveSchema | None) -> dict[str, pa.DataType]:
    if hive_schema is None:
        return {}
    if isinstance(hive_schema, pa.Schema):
        return {field.name: field.type for field in hive_schema}
    pinned = {}
    for name, type in hive_schema.items():
        if isinstance(type, pa.DataType):
            pinned[name] = type
            continue
        try:
            pinned[name] = pa.type_for_alias(str(type))
        except ValueError as exc:
            raise ConfigurationError(
                f"hive_schema: {type!r} for column {name!r} is not an Arrow type name; "
                "pass a pyarrow type such as pa.int64() or a name such as 'int64'"
            ) from exc
    return pinned


def partition_schema(
    paths: Sequence[str], *, stored: pa.Schema | None = None, hive_schema: HiveSchema | None = None
) -> pa.Schema:
    """The partition columns of ``paths`` (relative to the dataset root) and their types.

    Each column's type is the one ``hive_schema`` pins, else the ``stored`` one (from
    :data:`PARTITIONS_FILE`), else inferred: ``int64`` when every value is an integer that
    fits and prints back the same, else ``string``. Columns are in first-seen order.
    """
    per_file = partition_values(paths)
    names = list(dict.fromkeys(name for values in per_file for name in values))
    pinned = _pinned(hive_schema)
    known = {field.name: field.type for field in stored} if stored is not None else {}
    fields = []
    for name in names:
        type = pinned.get(name) or known.get(name)
        if type is None:
            type = _infer([values[name] for values in per_file if name in values])
        fields.append(pa.field(name, type))
    return pa.schema(fields)


def local_partition_schema(
    directory: str | os.PathLike[str], files: Sequence[str], *, hive_schema: HiveSchema | None = None
) -> pa.Schema:
    """:func:`partition_schema` of local ``files`` under ``directory``, with the types stored there."""
    root = Path(directory)
    stored_file = root / PARTITIONS_FILE
    stored = read_partitions_file(stored_file.read_bytes()) if stored_file.is_file() else None
    relative = [Path(path).relative_to(root).as_posix() for path in files]
    return partition_schema(relative, stored=stored, hive_schema=hive_schema)


def partition_expression(values: Mapping[str, str], schema: pa.Schema) -> ds.Expression:
    """The pyarrow filter that holds for a file with the raw partition ``values`` (from
    :func:`partition_values`): what a dataset fragment built by hand is given, so its rows
    get the partition columns.

    >>> schema = pa.schema([("cat", pa.string()), ("n", pa.int64())])
    >>> partition_expression({"cat": "a%20b", "n": NULL_PARTITION}, schema)
    <pyarrow.compute.Expression ((cat == "a b") and is_null(n, {nan_is_null=false}))>
    """
    expression = ds.scalar(True)
    for field in schema:
        if field.name not in values:
            continue
        value = decode_value(values[field.name], field.type)
        term = (
            ds.field(field.name).is_null()
            if value is None
            else ds.field(field.name) == pa.scalar(value, field.type)
        )
        expression = term if expression.equals(ds.scalar(True)) else expression & term
    return expression


#: One file's partition columns: (name, Arrow type, value) each.
PartitionColumns: TypeAlias = tuple[tuple[str, pa.DataType, Any], ...]


def decoded_partitions(paths: Sequence[str], schema: pa.Schema) -> list[PartitionColumns]:
    """Each path's partition columns (relative paths, as for :func:`partition_schema`), typed
    by ``schema`` and decoded by :func:`decode_value`.

    >>> decoded_partitions(["n=3/p.csv", "p.csv"], pa.schema([("n", pa.int64())]))
    [(('n', DataType(int64), 3),), ()]
    """
    return [
        tuple(
            (field.name, field.type, decode_value(values[field.name], field.type))
            for field in schema
            if field.name in values
        )
        for values in partition_values(paths)
    ]


def with_partition_columns(frame: pl.LazyFrame, columns: PartitionColumns) -> pl.LazyFrame:
    """``frame`` with one file's constant partition ``columns`` added (for readers without
    hive partitioning: Polars' CSV and JSON scans, one part of a file)."""
    if not columns:
        return frame
    dtypes = polars_hive_schema(pa.schema([(name, type) for name, type, _ in columns]))
    return frame.with_columns([pl.lit(value, dtype=dtypes[name]).alias(name) for name, _, value in columns])


def hive_partitioning(schema: pa.Schema) -> ds.HivePartitioning:
    """pyarrow's hive partitioning for ``schema``: percent-decoding, the null sentinel."""
    return ds.HivePartitioning(schema, null_fallback=NULL_PARTITION, segment_encoding="uri")


def polars_hive_schema(schema: pa.Schema) -> pl.Schema:
    """``schema`` as Polars' ``hive_schema=``."""
    return pl.Schema(pl.from_arrow(schema.empty_table()).schema)  # type: ignore[union-attr]


def pinned_hive_types(fmt: str, schema: pa.Schema | None) -> dict[str, pl.Schema]:
    """``{"hive_schema": ...}`` for a Polars scan of ``fmt`` (Parquet and IPC read hive
    partitions) when ``schema`` has partition columns, else nothing."""
    if schema is None or not len(schema) or fmt not in ("parquet", "ipc"):
        return {}
    return {"hive_schema": polars_hive_schema(schema)}


def duckdb_hive_types(schema: pa.Schema) -> dict[str, str]:
    """``schema`` as DuckDB's ``hive_types`` (type names; types DuckDB lacks read as VARCHAR)."""
    return {field.name: _DUCKDB_TYPES.get(field.type, "VARCHAR") for field in schema}


def partitions_file_text(schema: pa.Schema) -> str:
    """The contents of :data:`PARTITIONS_FILE` for the partition columns ``schema``.

    >>> read_partitions_file(partitions_file_text(pa.schema([("n", pa.int64())]))).types
    [DataType(int64)]
    """
    encoded = base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
    fields = {field.name: str(field.type) for field in schema}
    return json.dumps({"version": 1, "fields": fields, "arrow_schema": encoded}, indent=2) + "\n"


def read_partitions_file(text: str | bytes) -> pa.Schema:
    """The partition columns' schema stored in :data:`PARTITIONS_FILE`."""
    try:
        document = json.loads(text)
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(document["arrow_schema"])))
    except (ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        raise SchemaError(
            f"{PARTITIONS_FILE} is not a sygnify partitions file ({exc}); delete it to infer the "
            "partition types, or pass hive_schema="
        ) from exc


def split_partitions(table: pa.Table, partition_by: Sequence[str]) -> Iterator[tuple[str, pa.Table]]:
    """``table`` split by the values of ``partition_by``: each partition's relative directory
    (``name=value/...``, values by :func:`encode_value`) and its rows without those columns.

    >>> table = pa.table({"c": ["a", None, "a"], "v": [1, 2, 3]})
    >>> [(path, part.num_rows) for path, part in split_partitions(table, ["c"])]
    [('c=a', 2), ('c=__HIVE_DEFAULT_PARTITION__', 1)]
    """
    columns = list(partition_by)
    index = "__sygnify_row__"
    while index in table.column_names:
        index += "_"
    numbered = table.select(columns).append_column(index, pa.array(range(table.num_rows), pa.int64()))
    groups = numbered.group_by(columns, use_threads=False).aggregate([(index, "list")])
    rest = table.drop_columns(columns)
    rows = groups.column(f"{index}_list")
    keys = [groups.column(name).to_pylist() for name in columns]
    for group in range(groups.num_rows):
        path = "/".join(f"{name}={encode_value(keys[i][group])}" for i, name in enumerate(columns))
        yield path, rest.take(rows[group].values)
