"""Hive partitions on the local connector: every value and type comes back as written."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sygnify import CloudDataConnector
from sygnify.io.partitions import NULL_PARTITION, PARTITIONS_FILE
from tests.io.test_partitions import check_round_trip

#: A table with no rows; ``cat`` and ``d`` are its partition columns.
EMPTY = pa.table(
    {
        "v": pa.array([], pa.int64()),
        "cat": pa.array([], pa.string()),
        "d": pa.array([], pa.date32()),
        "w": pa.array([], pa.float64()),
    }
)


def check_empty_partitioned(lake: Any, prefix: str) -> list[str]:
    """Write :data:`EMPTY` partitioned under ``prefix`` (a table named ``empty`` in the
    connection's config): stream, scan and query give 0 rows with every column and type; an
    append then reads back alone. Returns the paths the empty write reported."""
    result = lake.write(EMPTY, prefix, partition_by=["cat", "d"])
    assert result.rows == 0
    assert len(result.paths) == 1
    assert f"cat={NULL_PARTITION}/d={NULL_PARTITION}/" in result.paths[0]
    assert PARTITIONS_FILE not in result.paths[0]
    expected = pa.schema([("v", pa.int64()), ("w", pa.float64()), ("cat", pa.string()), ("d", pa.date32())])
    assert sum(batch.num_rows for batch in lake.stream(prefix)) == 0
    scanned = lake.scan(prefix).collect()
    assert scanned.height == 0
    assert dict(scanned.schema) == {"v": pl.Int64, "w": pl.Float64, "cat": pl.String, "d": pl.Date}
    queried = lake.query("SELECT * FROM empty")
    assert queried.num_rows == 0
    assert {field.name: field.type for field in queried.schema} == {f.name: f.type for f in expected}

    day = datetime.date(2026, 1, 2)
    lake.write(
        pa.table({"v": [1], "cat": ["a b/c"], "d": [day], "w": [0.5]}), prefix, partition_by=["cat", "d"]
    )
    streamed = pa.Table.from_batches(list(lake.stream(prefix)))
    assert streamed.select(expected.names).to_pylist() == [{"v": 1, "w": 0.5, "cat": "a b/c", "d": day}]
    assert streamed.schema.field("d").type == pa.date32()
    assert lake.scan(prefix).collect().select(expected.names).rows() == [(1, 0.5, "a b/c", day)]
    assert lake.query("SELECT v, d FROM empty WHERE cat = ?", ["a b/c"]).to_pylist() == [{"v": 1, "d": day}]
    return list(result.paths)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_partition_values_and_types_round_trip(
    connector: CloudDataConnector, tmp_path: Path, fmt: str
) -> None:
    lake = connector.connect("local", name="lake", root=tmp_path, tables={"sp": "sp/"})
    check_round_trip(lake, "sp/", fmt)


def test_foreign_partitions_are_inferred_alike_everywhere(
    connector: CloudDataConnector, tmp_path: Path
) -> None:
    # Written by another tool: no stored types, so every reader infers the same ones.
    for folder, v in [("n=3000000000/code=007", 1), ("n=__HIVE_DEFAULT_PARTITION__/code=12", 2)]:
        (tmp_path / "ext" / folder).mkdir(parents=True)
        pq.write_table(pa.table({"v": [v]}), tmp_path / "ext" / folder / "p.parquet")
    lake = connector.connect("local", name="lake", root=tmp_path, tables={"ext": "ext/"})
    streamed = pa.Table.from_batches(list(lake.stream("ext/"))).sort_by("v")
    assert streamed.schema.field("n").type == pa.int64()
    assert streamed.schema.field("code").type == pa.string()
    assert streamed.to_pylist() == [
        {"v": 1, "n": 3000000000, "code": "007"},
        {"v": 2, "n": None, "code": "12"},
    ]
    assert lake.scan("ext/").collect().sort("v").rows() == [(1, 3000000000, "007"), (2, None, "12")]
    assert lake.query("SELECT v FROM ext WHERE code = ?", ["007"]).to_pylist() == [{"v": 1}]
    assert lake.query("SELECT v FROM ext WHERE n = ?", [3000000000]).to_pylist() == [{"v": 1}]
    pinned = pa.Table.from_batches(list(lake.stream("ext/", hive_schema={"code": pa.int32()})))
    assert pinned.schema.field("code").type == pa.int32()
    assert sorted(pinned.column("code").to_pylist()) == [7, 12]


def test_an_empty_partitioned_write_reads_back_as_zero_rows_with_its_schema(
    connector: CloudDataConnector, tmp_path: Path
) -> None:
    lake = connector.connect("local", name="lake", root=tmp_path, tables={"empty": "empty/"})
    paths = check_empty_partitioned(lake, "empty/")
    assert pq.read_schema(tmp_path / paths[0]).names == ["v", "w"]  # the data columns only
