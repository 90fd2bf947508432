"""Schema drift across the objects of one S3 dataset (moto server): a SchemaError, or unified on request."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.s3.connector import S3Connector
from sygnify.errors import SchemaError
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.moto import MotoServer, moto_server

pytestmark = pytest.mark.emulator

moto, server = emulator_fixtures(moto_server, "moto server could not be installed or started", session="moto")

FIRST = pa.table({"id": pa.array([1, 2], pa.int64()), "v": pa.array([1.0, 2.0])})
DRIFTS = {
    "added": pa.table({"id": pa.array([3], pa.int64()), "v": pa.array([3.0]), "b": ["x"]}),
    "removed": pa.table({"id": pa.array([3], pa.int64())}),
    "retyped": pa.table({"id": pa.array([3], pa.int64()), "v": ["three"]}),
}
NAMED = {"added": ["'b'"], "removed": ["'v'"], "retyped": ["'v'", "string", "double"]}


@pytest.fixture
def bucket(server: MotoServer) -> tuple[Any, str]:
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )
    name = f"sygnify-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return client, name


@pytest.fixture
def put(bucket: tuple[Any, str]) -> Callable[[str, pa.Table], None]:
    client, name = bucket

    def put(key: str, table: pa.Table) -> None:
        buffer = io.BytesIO()
        if key.endswith(".parquet"):
            pq.write_table(table, buffer)
        else:
            pl.from_arrow(table).write_csv(buffer)  # type: ignore[union-attr]
        client.put_object(Bucket=name, Key=key, Body=buffer.getvalue())

    return put


@pytest.fixture
def open_lake(
    connector: CloudDataConnector, server: MotoServer, bucket: tuple[Any, str]
) -> Callable[..., S3Connector]:
    def open_lake(**options: Any) -> S3Connector:
        connection = connector.connect(
            "s3",
            name=f"lake-{uuid.uuid4().hex[:6]}",
            bucket=bucket[1],
            tables={"t": "data/"},
            endpoint_url=server.endpoint,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing-secret",
            **options,
        )
        assert isinstance(connection, S3Connector)
        return connection

    return open_lake


def _frame(result: Any) -> pl.DataFrame:
    if isinstance(result, list):
        result = pa.Table.from_batches(result)
    frame = pl.from_arrow(result) if isinstance(result, pa.Table) else result
    assert isinstance(frame, pl.DataFrame)
    return frame.sort("id")


def _readers(lake: S3Connector, **options: Any) -> dict[str, Callable[[], Any]]:
    return {
        "stream": lambda: list(lake.stream("data/", **options)),
        "scan": lambda: lake.scan("data/", **options).collect(),
        "query": lambda: lake.query("SELECT * FROM t"),
    }


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_drift_is_a_schema_error_naming_object_and_column(
    put: Callable[[str, pa.Table], None], open_lake: Callable[..., S3Connector], fmt: str, drift: str
) -> None:
    put(f"data/a.{fmt}", FIRST)
    put(f"data/b.{fmt}", DRIFTS[drift])
    lake = open_lake()
    for read in _readers(lake).values():
        with pytest.raises(SchemaError) as caught:
            read()
        message = str(caught.value)
        assert f"data/b.{fmt}" in message
        assert f"data/a.{fmt}" in message
        for word in NAMED[drift]:
            assert word in message


def test_union_by_name_equals_polars_diagonal_relaxed(
    put: Callable[[str, pa.Table], None], open_lake: Callable[..., S3Connector]
) -> None:
    later = pa.table({"id": pa.array([3], pa.int32()), "b": ["x"]})
    put("data/a.parquet", FIRST)
    put("data/b.parquet", later)
    expected = pl.concat([pl.from_arrow(FIRST), pl.from_arrow(later)], how="diagonal_relaxed")
    lake = open_lake()
    streamed = _frame(list(lake.stream("data/", union_by_name=True)))
    scanned = _frame(lake.scan("data/", union_by_name=True).collect())
    assert streamed.equals(expected)
    assert scanned.equals(expected)


def test_union_by_name_over_csv(
    put: Callable[[str, pa.Table], None], open_lake: Callable[..., S3Connector]
) -> None:
    put("data/a.csv", FIRST)
    put("data/b.csv", DRIFTS["added"])
    lake = open_lake()
    for frame in (
        _frame(list(lake.stream("data/", union_by_name=True))),
        _frame(lake.scan("data/", union_by_name=True).collect()),
    ):
        assert frame.columns == ["id", "v", "b"]
        assert frame["b"].to_list() == [None, None, "x"]


def test_allow_missing_columns(
    put: Callable[[str, pa.Table], None], open_lake: Callable[..., S3Connector]
) -> None:
    put("data/a.parquet", FIRST)
    put("data/b.parquet", DRIFTS["removed"])
    lake = open_lake()
    for result in (
        list(lake.stream("data/", allow_missing_columns=True)),
        lake.scan("data/", allow_missing_columns=True).collect(),
    ):
        assert _frame(result).to_dict(as_series=False) == {"id": [1, 2, 3], "v": [1.0, 2.0, None]}
    put("data/c.parquet", DRIFTS["added"])
    with pytest.raises(SchemaError, match=r"c\.parquet has column 'b'"):
        lake.scan("data/", allow_missing_columns=True)


def test_no_drift_is_unaffected(
    put: Callable[[str, pa.Table], None], open_lake: Callable[..., S3Connector]
) -> None:
    put("data/a.parquet", FIRST)
    put("data/b.parquet", FIRST)
    lake = open_lake()
    assert pa.Table.from_batches(list(lake.stream("data/"))).num_rows == 4
    assert lake.scan("data/").collect().height == 4
    assert lake.query("SELECT count(*) AS n FROM t").to_pylist() == [{"n": 4}]


def test_sql_tables_unify_when_the_connection_says_so(
    put: Callable[[str, pa.Table], None], open_lake: Callable[..., S3Connector]
) -> None:
    later = pa.table({"id": pa.array([3], pa.int32()), "b": ["x"]})
    put("data/a.parquet", FIRST)
    put("data/b.parquet", later)
    expected = pl.concat([pl.from_arrow(FIRST), pl.from_arrow(later)], how="diagonal_relaxed")
    with pytest.raises(SchemaError, match=r"b\.parquet"):
        open_lake().query("SELECT * FROM t")
    unified = _frame(open_lake(union_by_name=True).query("SELECT * FROM t"))
    assert unified.select(expected.columns).equals(expected)
