"""Hive partitions on the local connector: every value and type comes back as written."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sygnify import CloudDataConnector
from tests.io.test_partitions import check_round_trip


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
