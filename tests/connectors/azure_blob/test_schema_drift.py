"""Schema drift across the blobs of one Azure dataset (Azurite): a SchemaError, or unified on request."""

from __future__ import annotations

import io
import uuid

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient

from sygnify import CloudDataConnector
from sygnify.connectors.azure_blob.connector import AzureBlobConnector
from sygnify.errors import SchemaError
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AzuriteServer, azurite_server

pytestmark = pytest.mark.emulator

azurite, server = emulator_fixtures(
    azurite_server, "Azurite could not be installed or started", session="azurite"
)

FIRST = pa.table({"id": pa.array([1, 2], pa.int64()), "v": pa.array([1.0, 2.0])})
ADDED = pa.table({"id": pa.array([3], pa.int64()), "v": pa.array([3.0]), "b": ["x"]})


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@pytest.fixture
def lake(connector: CloudDataConnector, server: AzuriteServer) -> AzureBlobConnector:
    container = f"sygnify-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(server.connection_string).create_container(container)
    connection = connector.connect(
        "azure_blob",
        container=container,
        tables={"t": "data/"},
        account_url=server.endpoint,
        account_name=ACCOUNT_NAME,
        account_key=ACCOUNT_KEY,
    )
    assert isinstance(connection, AzureBlobConnector)
    connection.put("data/a.parquet", _parquet(FIRST))
    connection.put("data/b.parquet", _parquet(ADDED))
    return connection


def test_added_column_is_a_schema_error_in_stream_scan_and_query(lake: AzureBlobConnector) -> None:
    for read in (
        lambda: list(lake.stream("data/")),
        lambda: lake.scan("data/").collect(),
        lambda: lake.query("SELECT * FROM t"),
    ):
        with pytest.raises(SchemaError, match=r"data/b\.parquet has column 'b'.*data/a\.parquet"):
            read()


def test_union_by_name_equals_polars_diagonal_relaxed(lake: AzureBlobConnector) -> None:
    expected = pl.concat([pl.from_arrow(FIRST), pl.from_arrow(ADDED)], how="diagonal_relaxed")
    streamed = pl.from_arrow(pa.Table.from_batches(list(lake.stream("data/", union_by_name=True))))
    scanned = lake.scan("data/", union_by_name=True).collect()
    for frame in (streamed, scanned):
        assert isinstance(frame, pl.DataFrame)
        assert frame.sort("id").equals(expected)
