"""open(), copy()/move() and SAS URLs of the azure_blob connector, against Azurite (issue #13)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow.parquet as pq
import pytest
from azure.storage.blob import AccountSasPermissions, BlobServiceClient, ResourceTypes, generate_account_sas

from sygnify import CloudDataConnector, events
from sygnify.connectors.azure_blob.connector import AzureBlobConnector
from sygnify.errors import ConfigurationError
from tests.connectors import _object_files as checks
from tests.connectors._emulated import emulator_fixtures
from tests.connectors._fault_proxy import FaultProxy, fault_proxy
from tests.emulators.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AzuriteServer, azurite_server

pytestmark = pytest.mark.emulator

MiB = 1024 * 1024
FAST_RETRY = {"max_attempts": 4, "initial_delay": 0.001, "max_delay": 0.01, "jitter": 0.0}
PART = 1 * MiB
BLOCK_BLOB = {"x-ms-blob-type": "BlockBlob"}

azurite, server = emulator_fixtures(
    azurite_server, "Azurite could not be installed or started", session="azurite"
)


def new_container(server: AzuriteServer) -> str:
    name = f"sygnify-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(server.connection_string).create_container(name)
    return name


def options(endpoint: str) -> dict[str, Any]:
    return {
        "account_url": endpoint,
        "account_name": ACCOUNT_NAME,
        "account_key": ACCOUNT_KEY,
        "retry": FAST_RETRY,
        "part_size": PART,
    }


@pytest.fixture
def lake(server: AzuriteServer) -> Iterator[AzureBlobConnector]:
    with CloudDataConnector(environ={}) as connector:
        connection = connector.connect(
            "azure_blob", container=new_container(server), **options(server.endpoint)
        )
        assert isinstance(connection, AzureBlobConnector)
        yield connection


def test_open_reads_parquet_zip_and_text_by_ranges(lake: AzureBlobConnector) -> None:
    checks.check_reads_parquet_zip_and_text(lake)


def test_open_refuses_missing_blobs_and_bad_names(lake: AzureBlobConnector) -> None:
    checks.check_open_refuses_missing_and_bad_names(lake)


def test_writer_publishes_a_block_blob_on_close_only(lake: AzureBlobConnector) -> None:
    checks.check_writes_publish_on_close_only(lake, PART)


def test_exception_inside_with_leaves_no_blob(lake: AzureBlobConnector) -> None:
    checks.check_exception_inside_with_leaves_no_object(lake, PART)


def test_copy_and_move_across_containers(lake: AzureBlobConnector, server: AzuriteServer) -> None:
    checks.check_copy_and_move(lake, f"az://{new_container(server)}")


def test_sas_urls_get_and_put_with_a_plain_http_client(lake: AzureBlobConnector) -> None:
    checks.check_presigned_get_and_put(lake, put_headers=BLOCK_BLOB)


def test_an_expired_sas_url_is_refused(lake: AzureBlobConnector) -> None:
    lake.put("files/short.txt", b"soon gone")
    url = lake.presigned_url("files/short.txt", expires=1)
    assert checks.http(url) == (200, b"soon gone")
    deadline = time.monotonic() + 10
    while (status := checks.http(url)[0]) == 200 and time.monotonic() < deadline:
        time.sleep(0.25)  # Azurite compares the SAS expiry (whole seconds) with its own clock
    assert status == 403
    put_url = lake.presigned_url("files/late.txt", method="PUT", expires=1)
    time.sleep(2.1)
    assert checks.http(put_url, data=b"late", headers=BLOCK_BLOB)[0] == 403
    assert not lake.exists("files/late.txt")


def test_a_sas_token_connection_cannot_issue_sas(server: AzuriteServer) -> None:
    container = new_container(server)
    sas = generate_account_sas(
        ACCOUNT_NAME,
        ACCOUNT_KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, create=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    with CloudDataConnector(environ={}) as connector:
        delegated = connector.connect(
            "azure_blob", container=container, account_url=server.endpoint, sas_token=sas, retry=FAST_RETRY
        )
        assert isinstance(delegated, AzureBlobConnector)
        delegated.put("a.txt", b"x")
        with pytest.raises(ConfigurationError, match="account key"):
            delegated.presigned_url("a.txt")
        # a SAS connection still copies (its source URL carries the SAS) and reads through open()
        delegated.copy("a.txt", "b.txt")
        with delegated.open("b.txt") as handle:
            assert handle.read() == b"x"


# -- faults ----------------------------------------------------------------------------------


@pytest.fixture
def proxy(server: AzuriteServer) -> Iterator[FaultProxy]:
    with fault_proxy(f"http://{server.host}:{server.port}") as running:
        yield running


def test_a_ranged_read_in_open_recovers_from_one_503(server: AzuriteServer, proxy: FaultProxy) -> None:
    container = new_container(server)
    BlobServiceClient.from_connection_string(server.connection_string).get_blob_client(
        container, "f/t.parquet"
    ).upload_blob(checks.parquet_bytes())
    with CloudDataConnector(environ={}) as connector:
        flaky = connector.connect("azure_blob", container=container, **options(f"{proxy.url}/{ACCOUNT_NAME}"))
        assert isinstance(flaky, AzureBlobConnector)
        retries: list[str] = []
        unsubscribe = events.subscribe(
            lambda event, fields: retries.append(fields["error"]) if event == "connector.retry" else None
        )
        try:
            with flaky.open("f/t.parquet") as handle:
                before = proxy.count("GET", "t.parquet")
                proxy.inject("azure_busy", times=1, when=lambda method, path: method == "GET")
                table = pq.ParquetFile(handle).read(columns=["id"])
        finally:
            unsubscribe()
    assert table.num_rows == 20_000
    assert retries == ["ThrottledError"]
    assert proxy.count("GET", "t.parquet") - before >= 2
