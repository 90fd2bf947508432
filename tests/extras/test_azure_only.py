"""``pip install "sygnify[azure]"`` alone writes a Parquet dataset to Azure Blob and reads it back.

Against Azurite, over the wire, with the Azure SDK. In the ``azure``-only session
(``SYGNIFY_EXTRA_ONLY=azure``: sygnify[azure] and pytest, nothing else) it also checks
that no other extra's packages (pandas, which only the test extra brings, above all) are there.
"""

from __future__ import annotations

import uuid

import polars as pl
import pyarrow as pa
import pytest
from azure.storage.blob import BlobServiceClient

from sygnify import CloudDataConnector
from sygnify.connectors.azure_blob.connector import AzureBlobConnector
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AzuriteServer, azurite_server
from tests.extras._only import check_alone, only_extra

pytestmark = pytest.mark.emulator

azurite, server = emulator_fixtures(
    azurite_server, "Azurite could not be installed or started", session="extras_azurite"
)


@pytest.mark.skipif(only_extra() != "azure", reason="only in the azure-only environment")
def test_the_environment_holds_the_azure_extra_alone() -> None:
    check_alone("azure")


def test_write_and_read_back_a_parquet_dataset_with_the_azure_extra(server: AzuriteServer) -> None:
    container = f"sygnify-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(server.connection_string).create_container(container)
    with CloudDataConnector(environ={}) as connector:
        lake = connector.connect(
            "azure_blob",
            container=container,
            account_url=server.endpoint,
            account_name=ACCOUNT_NAME,
            account_key=ACCOUNT_KEY,
        )
        assert isinstance(lake, AzureBlobConnector)
        data = pl.DataFrame({"region": ["eu", "us", "eu"], "amount": [1.0, 2.0, 3.0]})
        lake.write(data, "sales/", partition_by=["region"])
        totals = lake.scan("sales/").group_by("region").agg(pl.col("amount").sum()).sort("region").collect()
        assert totals.to_dicts() == [{"region": "eu", "amount": 4.0}, {"region": "us", "amount": 2.0}]
        table = pa.Table.from_batches(list(lake.stream(f"az://{container}/sales/", columns=["amount"])))
        assert sorted(table.column("amount").to_pylist()) == [1.0, 2.0, 3.0]
