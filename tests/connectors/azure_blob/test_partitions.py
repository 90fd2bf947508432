"""Hive partitions on Azure Blob (Azurite): every value and type comes back as written."""

from __future__ import annotations

import pytest

from sygnify import CloudDataConnector
from tests.connectors.azure_blob.test_azure_blob import azurite, container, key_options, server
from tests.emulators.azurite import AzuriteServer
from tests.io.test_partitions import check_round_trip

__all__ = ["azurite", "container", "server"]  # the fixtures, shared with test_azure_blob

pytestmark = pytest.mark.emulator


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_partition_values_and_types_round_trip(
    connector: CloudDataConnector, server: AzuriteServer, container: str, fmt: str
) -> None:
    lake = connector.connect(
        "azure_blob", name="lake", container=container, tables={"sp": "sp/"}, **key_options(server.endpoint)
    )
    check_round_trip(lake, "sp/", fmt)
