"""The Arrow filesystem over the Azure SDK (all data reads): few requests, exact bytes, against Azurite."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient

from sygnify import CloudDataConnector
from sygnify.connectors._objectstore.datasets import ObjectStoreFileSystem
from sygnify.connectors.azure_blob.connector import AzureBlobConnector
from tests.connectors._emulated import emulator_fixtures
from tests.connectors._fault_proxy import FaultProxy, fault_proxy
from tests.emulators.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AzuriteServer, azurite_server

pytestmark = pytest.mark.emulator

MiB = 1024 * 1024
ROWS = 50_000

azurite, server = emulator_fixtures(
    azurite_server, "Azurite could not be installed or started", session="azurite"
)


def _table() -> pa.Table:
    rng = np.random.default_rng(0)
    return pa.table(
        {
            "id": np.arange(ROWS, dtype=np.int64),
            "account": pa.array(rng.integers(0, 1000, ROWS)).cast(pa.string()),
            "amount": rng.normal(100, 20, ROWS),
            "flag": rng.integers(0, 2, ROWS).astype(bool),
        }
    )


@pytest.fixture
def lake(server: AzuriteServer) -> Iterator[tuple[AzureBlobConnector, FaultProxy, int]]:
    """A connection through a counting proxy, with one Parquet blob ``t/x.parquet`` (one row group)."""
    container = f"sygnify-{uuid.uuid4().hex[:12]}"
    client = BlobServiceClient.from_connection_string(server.connection_string).create_container(container)
    buffer = io.BytesIO()
    pq.write_table(_table(), buffer)
    client.upload_blob("t/x.parquet", buffer.getvalue())
    with (
        fault_proxy(f"http://{server.host}:{server.port}") as proxy,
        CloudDataConnector(environ={}) as connector,
    ):
        connection = connector.connect(
            "azure_blob",
            container=container,
            account_url=f"{proxy.url}/{ACCOUNT_NAME}",
            account_name=ACCOUNT_NAME,
            account_key=ACCOUNT_KEY,
            part_size=1 * MiB,
        )
        assert isinstance(connection, AzureBlobConnector)
        assert buffer.tell() < 1 * MiB  # the whole blob fits one part
        yield connection, proxy, buffer.tell()


def _data_gets(proxy: FaultProxy) -> int:
    return sum(
        1 for method, path in proxy.seen if method == "GET" and "x.parquet" in path and "comp=" not in path
    )


def test_a_dataset_read_costs_one_get_for_the_footer_and_one_for_the_row_group(
    lake: tuple[AzureBlobConnector, FaultProxy, int],
) -> None:
    connection, proxy, _ = lake
    proxy.clear()
    table = connection.dataset("t/x.parquet").to_table(columns=["id", "amount"])
    assert table.equals(_table().select(["id", "amount"]))
    # pyarrow asks for the id and amount column chunks one after the other: one part serves both.
    assert _data_gets(proxy) == 2


def test_with_sizes_opens_without_a_head_and_reads_the_same_rows(
    lake: tuple[AzureBlobConnector, FaultProxy, int],
) -> None:
    connection, proxy, size = lake
    handler = connection.filesystem().handler
    assert isinstance(handler, ObjectStoreFileSystem)
    path = f"{connection.config.container}/t/x.parquet"
    proxy.clear()
    plain = pq.ParquetFile(connection.filesystem().open_input_file(path)).read(columns=["amount"])
    assert proxy.count("HEAD", "x.parquet") == 1
    proxy.clear()
    sized = handler.with_sizes({path: size})
    with sized.open_input_file(path) as handle:
        table = pq.ParquetFile(handle).read(columns=["amount"])
    assert proxy.count("HEAD", "x.parquet") == 0
    assert table.equals(plain)
    assert table.equals(_table().select(["amount"]))
