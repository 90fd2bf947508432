"""Hive partitions on S3 (moto): every value and type comes back as written."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.s3.connector import S3Connector
from tests.connectors.local.test_partitions import check_empty_partitioned
from tests.connectors.s3.test_s3 import base_options, bucket, moto, raw_s3, server
from tests.emulators.moto import MotoServer
from tests.io.test_partitions import check_round_trip

__all__ = ["bucket", "moto", "raw_s3", "server"]  # the fixtures, shared with test_s3

pytestmark = pytest.mark.emulator


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_partition_values_and_types_round_trip(
    connector: CloudDataConnector, server: MotoServer, bucket: str, fmt: str
) -> None:
    lake = connector.connect(
        "s3", name="lake", bucket=bucket, tables={"sp": "sp/"}, **base_options(server.endpoint)
    )
    check_round_trip(lake, "sp/", fmt)


def test_foreign_partitions_are_inferred_alike_everywhere(
    connector: CloudDataConnector, server: MotoServer, bucket: str
) -> None:
    # Written by another tool: no stored types, so stream, scan and SQL infer the same ones.
    lake = connector.connect(
        "s3", name="lake", bucket=bucket, tables={"ext": "ext/"}, **base_options(server.endpoint)
    )
    assert isinstance(lake, S3Connector)
    for folder, v in [("n=3000000000/code=007", 1), ("n=__HIVE_DEFAULT_PARTITION__/code=a%20b", 2)]:
        buffer = io.BytesIO()
        pq.write_table(pa.table({"v": [v]}), buffer)
        lake.put(f"ext/{folder}/p.parquet", buffer.getvalue())
    expected = [{"v": 1, "n": 3000000000, "code": "007"}, {"v": 2, "n": None, "code": "a b"}]
    streamed = pa.Table.from_batches(list(lake.stream("ext/"))).sort_by("v")
    assert streamed.schema.field("n").type == pa.int64()
    assert streamed.to_pylist() == expected
    assert lake.scan("ext/").collect().sort("v").to_dicts() == expected
    assert lake.query("SELECT v FROM ext WHERE code = ?", ["a b"]).to_pylist() == [{"v": 2}]
    assert lake.query("SELECT v FROM ext WHERE n = ?", [3000000000]).to_pylist() == [{"v": 1}]


def test_an_empty_partitioned_write_reads_back_as_zero_rows_with_its_schema(
    connector: CloudDataConnector, server: MotoServer, bucket: str
) -> None:
    lake = connector.connect(
        "s3", name="lake", bucket=bucket, tables={"empty": "empty/"}, **base_options(server.endpoint)
    )
    check_empty_partitioned(lake, "empty/")
