"""Small azure_blob fixes (issue #13): key traversal, no credentials over http, unknown columns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pyarrow as pa
import pytest
from azure.storage.blob import BlobServiceClient

from sygnify import CloudDataConnector
from sygnify.connectors.azure_blob.connector import AzureBlobConnector
from sygnify.errors import ConfigurationError, PathEscapeError, SchemaError
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AzuriteServer, azurite_server

pytestmark = pytest.mark.emulator

azurite, server = emulator_fixtures(
    azurite_server, "Azurite could not be installed or started", session="azurite"
)


@pytest.fixture
def lake(server: AzuriteServer) -> Iterator[AzureBlobConnector]:
    container = f"sygnify-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(server.connection_string).create_container(container)
    with CloudDataConnector(environ={}) as connector:
        connection = connector.connect(
            "azure_blob",
            container=container,
            account_url=server.endpoint,
            account_name=ACCOUNT_NAME,
            account_key=ACCOUNT_KEY,
            retry={"max_attempts": 1},
        )
        assert isinstance(connection, AzureBlobConnector)
        yield connection


@pytest.mark.parametrize("key", ["a/../b.txt", "../b.txt", "a/./b.txt", "az://other/x/../y"])
def test_dot_segments_in_keys_are_refused_before_any_request(lake: AzureBlobConnector, key: str) -> None:
    for call in (
        lambda: lake.put(key, b"x"),
        lambda: lake.get(key),
        lambda: lake.exists(key),
        lambda: lake.delete(key),
        lambda: lake.write(pa.table({"x": [1]}), key),
    ):
        with pytest.raises(PathEscapeError, match="plain key") as caught:
            call()
        assert caught.value.resource == key
    assert lake.list() == []  # Azure would have stored a/../b.txt as b.txt


def test_no_credentials_over_http_is_a_configuration_error(server: AzuriteServer) -> None:
    expected = r"plain http.*set account_key, sas_token or connection_string"
    with CloudDataConnector(environ={}) as connector, pytest.raises(ConfigurationError, match=expected):
        connector.connect("azure_blob", account_url=server.endpoint, container="x").list()


def test_unknown_stream_column_is_a_schema_error(lake: AzureBlobConnector) -> None:
    lake.write(pa.table({"account": ["a"], "amount": [1]}), "t.parquet")
    with pytest.raises(
        SchemaError, match=r"no column 'nope' in 't.parquet'; its columns are account, amount"
    ):
        list(lake.stream("t.parquet", columns=["nope"]))
    assert [batch.num_rows for batch in lake.stream("t.parquet", columns=["amount"])] == [1]
