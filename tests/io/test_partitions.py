"""Hive partition values: the one encoding and decoding (sygnify.io.partitions), and the
round trip every connector test module runs with :func:`check_round_trip`."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sygnify.errors import ConfigurationError, SchemaError
from sygnify.io.formats import write_parts
from sygnify.io.partitions import (
    NULL_PARTITION,
    PARTITIONS_FILE,
    decode_value,
    duckdb_hive_types,
    encode_value,
    hive_partitioning,
    partition_expression,
    partition_schema,
    partition_values,
    partitions_file_text,
    polars_hive_schema,
    read_partitions_file,
    split_partitions,
)

#: One row per partition; every kind of value that must come back as written.
STRINGS = ["a b", "x/y", "k=v", "100%", "ünï ☃", "", None, "007", "a%2Fb", "q?#'\"*:[]^{}\\\t"]
ROUND_TRIP = pa.table(
    {
        "v": pa.array(range(len(STRINGS)), pa.int64()),
        "cat": pa.array(STRINGS, pa.string()),
        "n": pa.array([3_000_000_000, None, -1, 0, 7, 2**62, -(2**40), 5, 6, 8], pa.int64()),
        "d": pa.array([datetime.date(2024, 1, 1 + i % 3) for i in range(len(STRINGS))], pa.date32()),
        "b": pa.array([i % 2 == 0 for i in range(len(STRINGS))], pa.bool_()),
    }
)
PARTITION_BY = ["cat", "n", "d", "b"]

_SCALARS: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "text": (pa.string(), st.text().filter(lambda text: text != NULL_PARTITION)),
    "int": (pa.int64(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    "date": (pa.date32(), st.dates()),
    "bool": (pa.bool_(), st.booleans()),
}


def _normal(type: pa.DataType) -> pa.DataType:
    """Readers differ in which Arrow string layout they return; the values must not."""
    if pa.types.is_large_string(type) or pa.types.is_string_view(type):
        return pa.string()
    return type


def _equal_tables(got: pa.Table, expected: pa.Table) -> None:
    got = got.select(expected.column_names).sort_by("v")
    assert [_normal(field.type) for field in got.schema] == list(expected.schema.types)
    assert got.to_pylist() == expected.to_pylist()


def check_round_trip(connection: Any, prefix: str, fmt: str = "parquet") -> None:
    """Write :data:`ROUND_TRIP` partitioned under ``prefix`` (a table named ``sp`` in the
    connection's config) in ``fmt`` and read it back through stream, scan and query: the
    same values and types; SQL parameters find partition values; ``hive_schema=`` pins a type."""
    result = connection.write(ROUND_TRIP, prefix, mode="overwrite", format=fmt, partition_by=PARTITION_BY)
    assert result.rows == ROUND_TRIP.num_rows
    assert all(PARTITIONS_FILE not in path for path in result.paths)
    assert len(result.paths) == ROUND_TRIP.num_rows

    _equal_tables(pa.Table.from_batches(list(connection.stream(prefix))), ROUND_TRIP)

    scanned = connection.scan(prefix).collect().sort("v").select(ROUND_TRIP.column_names)
    expected = pl.from_arrow(ROUND_TRIP)
    assert isinstance(expected, pl.DataFrame)
    assert scanned.schema == expected.schema
    assert scanned.equals(expected)

    _equal_tables(connection.query("SELECT * FROM sp"), ROUND_TRIP)
    assert connection.query("SELECT v FROM sp WHERE cat = ?", ["a b"]).to_pylist() == [{"v": 0}]
    assert connection.query("SELECT v FROM sp WHERE cat = ?", ["x/y"]).to_pylist() == [{"v": 1}]
    assert connection.query("SELECT v FROM sp WHERE n = ?", [3_000_000_000]).to_pylist() == [{"v": 0}]
    assert connection.query("SELECT v FROM sp WHERE cat IS NULL").to_pylist() == [{"v": 6}]
    assert connection.query("SELECT v FROM sp WHERE cat = ''").to_pylist() == [{"v": 5}]

    pinned = pa.Table.from_batches(list(connection.stream(prefix, hive_schema={"n": "string"})))
    assert pinned.schema.field("n").type == pa.string()
    assert set(pinned.column("n").to_pylist()) == {
        None if n is None else str(n) for n in ROUND_TRIP["n"].to_pylist()
    }
    frame = connection.scan(prefix, hive_schema=pa.schema([("n", pa.string())])).collect()
    assert frame.schema["n"] == pl.String
    assert "3000000000" in frame["n"].to_list()


# -- encoding and decoding ---------------------------------------------------------------------


@given(st.sampled_from(sorted(_SCALARS)).flatmap(lambda kind: st.tuples(st.just(kind), _SCALARS[kind][1])))
def test_every_value_round_trips_through_one_path_segment(case: tuple[str, Any]) -> None:
    kind, value = case
    type = _SCALARS[kind][0]
    raw = encode_value(value)
    assert "/" not in raw
    assert "=" not in raw
    assert decode_value(raw, type) == value
    schema = pa.schema([("c", type)])
    expected = ds.field("c") == pa.scalar(value, type)
    assert partition_expression({"c": raw}, schema).equals(expected)
    if kind != "bool":  # pyarrow's parse() prints bool terms as literals; datasets read them right
        # pyarrow's hive partitioning (what local datasets use) decodes it the same way.
        assert hive_partitioning(schema).parse(f"c={raw}/").equals(expected)


@given(st.one_of(st.none(), st.text(), st.integers(), st.dates(), st.booleans()))
def test_null_and_anything_else_encode_distinctly(value: Any) -> None:
    raw = encode_value(value)
    assert (raw == NULL_PARTITION) == (value is None or value == NULL_PARTITION)


def test_the_characters_hive_escapes_and_only_those() -> None:
    assert encode_value("a b:c") == "a b%3Ac"
    assert encode_value("%") == "%25"
    assert encode_value("\x01") == "%01"
    assert encode_value("ü-_.~,;!$&()+@") == "ü-_.~,;!$&()+@"
    assert encode_value(None) == NULL_PARTITION
    assert decode_value(NULL_PARTITION, pa.string()) is None


def test_inference_is_int64_for_integers_that_print_back_else_string() -> None:
    def types(*values: str) -> str:
        return str(partition_schema([f"c={value}/p.parquet" for value in values]).field("c").type)

    assert types("1", "3000000000", NULL_PARTITION) == "int64"
    assert types("007") == "string"
    assert types("+5") == "string"
    assert types(str(2**63)) == "string"
    assert types("1", "a") == "string"
    assert types(NULL_PARTITION) == "string"


def test_pinned_types_win_over_stored_ones_which_win_over_inference() -> None:
    paths = ["a=1/b=2/c=3/p.parquet"]
    stored = pa.schema([("b", pa.int8()), ("c", pa.int16())])
    schema = partition_schema(paths, stored=stored, hive_schema={"c": pa.string()})
    assert schema == pa.schema([("a", pa.int64()), ("b", pa.int8()), ("c", pa.string())])
    with pytest.raises(ConfigurationError, match="not an Arrow type name"):
        partition_schema(paths, hive_schema={"a": "integer-ish"})


def test_a_value_that_is_not_its_type_says_which() -> None:
    with pytest.raises(SchemaError, match="'x' is not a int64"):
        decode_value("x", pa.int64())


def test_partition_values_skip_plain_directories() -> None:
    assert partition_values(["2024/c=1/=odd/p.parquet", "p.parquet"]) == [{"c": "1"}, {}]


def test_reader_schemas() -> None:
    schema = pa.schema([("s", pa.string()), ("n", pa.int64()), ("d", pa.date32()), ("b", pa.bool_())])
    assert duckdb_hive_types(schema) == {"s": "VARCHAR", "n": "BIGINT", "d": "DATE", "b": "BOOLEAN"}
    assert polars_hive_schema(schema) == pl.Schema(
        {"s": pl.String, "n": pl.Int64, "d": pl.Date, "b": pl.Boolean}
    )


def test_partitions_file_round_trips_and_refuses_garbage() -> None:
    schema = pa.schema([("n", pa.int64()), ("d", pa.date32())])
    assert read_partitions_file(partitions_file_text(schema)) == schema
    with pytest.raises(SchemaError, match=PARTITIONS_FILE):
        read_partitions_file("{}")


def test_split_partitions_keeps_every_row_once() -> None:
    table = pa.table({"c": ["a", None, "a", ""], "v": [1, 2, 3, 4]})
    parts = dict(split_partitions(table, ["c"]))
    assert {path: part.column("v").to_pylist() for path, part in parts.items()} == {
        "c=a": [1, 3],
        f"c={NULL_PARTITION}": [2],
        "c=": [4],
    }
    assert all(part.column_names == ["v"] for part in parts.values())


def test_write_parts_stores_the_partition_types(tmp_path: Path) -> None:
    written = write_parts(ROUND_TRIP, tmp_path, "parquet", PARTITION_BY)
    assert written[-1] == tmp_path / PARTITIONS_FILE
    stored = read_partitions_file(written[-1].read_text())
    assert stored == pa.schema([ROUND_TRIP.schema.field(name) for name in PARTITION_BY])
    files = [path.relative_to(tmp_path).as_posix() for path in written[:-1]]
    schema = partition_schema(files, stored=stored)
    dataset = ds.dataset(
        [str(path) for path in written[:-1]],
        format="parquet",
        partitioning=hive_partitioning(schema),
        partition_base_dir=str(tmp_path),
    )
    _equal_tables(dataset.to_table(), ROUND_TRIP)
