"""The azure_blob connector against a real Azurite, over the wire, with azure-storage-blob."""

from __future__ import annotations

import hashlib
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ResourceTypes,
    generate_account_sas,
)

from sygnify import CloudDataConnector, events
from sygnify.connectors.azure_blob.connector import (
    AzureBlobConnector,
    BucketNotFoundError,
    ObjectNotFoundError,
)
from sygnify.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    DataQualityError,
    PermissionDeniedError,
    ThrottledError,
)
from sygnify.testing.connectors import ConnectorConformance, sample_table
from tests.connectors._emulated import emulator_fixtures, format_per_target
from tests.connectors._fault_proxy import FaultProxy, fault_proxy
from tests.emulators.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AzuriteServer, azurite_server

pytestmark = pytest.mark.emulator

MiB = 1024 * 1024
FAST_RETRY = {"max_attempts": 4, "initial_delay": 0.001, "max_delay": 0.01, "jitter": 0.0}


azurite, server = emulator_fixtures(
    azurite_server, "Azurite could not be installed or started", session="azurite"
)


@pytest.fixture
def container(server: AzuriteServer) -> str:
    name = f"sygnify-{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(server.connection_string).create_container(name)
    return name


def key_options(endpoint: str) -> dict[str, Any]:
    return {
        "account_url": endpoint,
        "account_name": ACCOUNT_NAME,
        "account_key": ACCOUNT_KEY,
        "retry": FAST_RETRY,
    }


@pytest.fixture
def lake(connector: CloudDataConnector, server: AzuriteServer, container: str) -> AzureBlobConnector:
    connection = connector.connect(
        "azure_blob",
        name="lake",
        container=container,
        tables={"tx": "tx/*.parquet"},
        **key_options(server.endpoint),
    )
    assert isinstance(connection, AzureBlobConnector)
    return connection


class TestAzureBlobConformance(ConnectorConformance):
    @pytest.fixture
    def connection(self, lake: AzureBlobConnector) -> AzureBlobConnector:
        return lake

    @pytest.fixture(params=["parquet", "csv", "ipc", "json"])
    def dataset_target(self, request: pytest.FixtureRequest, lake: AzureBlobConnector) -> str:
        return f"data_{request.param}/"


@pytest.fixture(autouse=True)
def _format_per_target(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Conformance targets named data_<format>/ are written in that format."""
    format_per_target(request, monkeypatch, AzureBlobConnector)


# -- objects ------------------------------------------------------------------------------


def test_put_get_metadata_list_and_delete(
    connector: CloudDataConnector, server: AzuriteServer, container: str
) -> None:
    store = connector.connect(
        "azure_blob", container=container, list_page_size=2, **key_options(server.endpoint)
    )
    assert isinstance(store, AzureBlobConnector)
    info = store.put("docs/a.txt", b"hello world", content_type="text/plain", metadata={"owner": "ops"})
    assert (info.size, info.content_type, dict(info.metadata)) == (11, "text/plain", {"owner": "ops"})
    assert store.get(f"az://{container}/docs/a.txt", start=6, end=11) == b"world"
    for i in range(5):
        store.put(f"many/{i}.bin", bytes([i]))
    assert store.list("many/") == [f"many/{i}.bin" for i in range(5)]  # 3 pages of 2
    store.delete("docs/a.txt", "docs/never-existed.txt")
    assert not store.exists("docs/a.txt")
    with pytest.raises(ObjectNotFoundError):
        store.get("docs/a.txt")


def test_block_upload_and_ranged_download(
    connector: CloudDataConnector, server: AzuriteServer, container: str, tmp_path: Path
) -> None:
    store = connector.connect(
        "azure_blob",
        container=container,
        part_size=1 * MiB,
        max_concurrency=3,
        **key_options(server.endpoint),
    )
    assert isinstance(store, AzureBlobConnector)
    payload = bytes(range(256)) * (5 * MiB // 256 + 3)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    assert store.upload(source, "big/big.bin").size == len(payload)
    blocks = store._service.get_blob_client(container, "big/big.bin").get_block_list()[0]
    assert len(blocks) == 6
    assert store.download("big/big.bin", tmp_path / "back.bin") == len(payload)
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).digest() == hashlib.sha256(payload).digest()


# -- datasets -----------------------------------------------------------------------------


def test_parquet_glob_read_with_projection(lake: AzureBlobConnector, container: str) -> None:
    for month in (1, 2, 3):
        lake.write(sample_table(100), f"glob/2026-0{month}.parquet", mode="overwrite")
    lake.write(sample_table(10), "glob/notes.csv", mode="overwrite")
    table = pa.Table.from_batches(list(lake.stream(f"az://{container}/glob/2026-*.parquet", columns=["id"])))
    assert (table.column_names, table.num_rows) == (["id"], 300)
    frame = lake.scan(f"az://{container}/glob/*.parquet").filter(pl.col("id") < 5).select("account").collect()
    assert frame.shape == (15, 1)


def test_partitioned_write_and_sql(lake: AzureBlobConnector) -> None:
    data = pl.DataFrame({"region": ["eu", "us", "eu"], "amount": [1.0, 2.0, 3.0]})
    lake.write(data, "sales/", partition_by=["region"], mode="overwrite")
    totals = lake.scan("sales/").group_by("region").agg(pl.col("amount").sum()).sort("region").collect()
    assert totals.to_dicts() == [{"region": "eu", "amount": 4.0}, {"region": "us", "amount": 2.0}]
    lake.write(pl.DataFrame({"account": ["a", "b", "a"], "amount": [5, 7, 1]}), "tx/part.parquet")
    result = lake.query(
        "SELECT account, sum(amount) AS s FROM tx WHERE amount > ? GROUP BY 1 ORDER BY 1", [1]
    )
    assert result.to_pylist() == [{"account": "a", "s": 5}, {"account": "b", "s": 7}]


# -- auth -----------------------------------------------------------------------------------


def test_connection_string(connector: CloudDataConnector, server: AzuriteServer, container: str) -> None:
    store = connector.connect("azure_blob", connection_string=server.connection_string, container=container)
    store.write(sample_table(5), "cs/x.parquet")
    assert store.scan("cs/x.parquet").collect().height == 5
    assert ACCOUNT_KEY not in repr(store)


def test_sas_token(connector: CloudDataConnector, server: AzuriteServer, container: str) -> None:
    sas = generate_account_sas(
        ACCOUNT_NAME,
        ACCOUNT_KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, delete=True, create=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    store = connector.connect(
        "azure_blob",
        account_url=server.endpoint,
        account_name=ACCOUNT_NAME,
        sas_token=sas,
        container=container,
        tables={"tx": "sas/"},
    )
    assert isinstance(store, AzureBlobConnector)
    store.write(sample_table(7), "sas/x.parquet")
    store.write(sample_table(5), "sas/y.parquet")
    assert store.list("sas/") == ["sas/x.parquet", "sas/y.parquet"]
    assert store.scan("sas/x.parquet").collect().height == 7
    # Arrow reads (stream, dataset, query) go through the SDK with SAS: pyarrow's own Azure
    # filesystem mis-builds SAS URLs on path-style endpoints such as Azurite's.
    batches = list(store.stream("sas/", columns=["id", "amount"], batch_size=4))
    assert [batch.num_rows for batch in batches] == [4, 4, 4]
    assert batches[0].schema.names == ["id", "amount"]
    expected = sample_table(7).column("amount").to_pylist() + sample_table(5).column("amount").to_pylist()
    streamed = pa.Table.from_batches(batches).column("amount").to_pylist()
    assert sorted(streamed) == sorted(expected)
    assert store.query("SELECT count(*) AS n FROM tx WHERE id < ?", [3]).to_pylist() == [{"n": 6}]
    assert store.dataset("sas/*.parquet").count_rows() == 12
    with pytest.raises(ObjectNotFoundError):
        list(store.stream("nothing-here/"))
    store.write(sample_table(6), "sascsv/x.csv")  # CSV is read as a stream, not by ranges
    assert sum(batch.num_rows for batch in store.stream("sascsv/x.csv")) == 6
    # The SDK-backed Arrow filesystem answers pyarrow's own questions too.
    filesystem = store.filesystem()
    info = filesystem.get_file_info(f"{container}/sas/x.parquet")
    assert (info.type, info.size) == (pafs.FileType.File, store.metadata("sas/x.parquet").size)
    assert filesystem.get_file_info(f"{container}/sas").type == pafs.FileType.Directory
    assert filesystem.get_file_info(f"{container}/nope.parquet").type == pafs.FileType.NotFound
    listed = filesystem.get_file_info(pafs.FileSelector(container, recursive=True))
    assert {entry.path for entry in listed if entry.type == pafs.FileType.File} == {
        f"{container}/sas/x.parquet",
        f"{container}/sas/y.parquet",
        f"{container}/sascsv/x.csv",
    }
    assert pq.read_table(f"{container}/sas/y.parquet", filesystem=filesystem).num_rows == 5
    with pytest.raises(NotImplementedError):
        filesystem.delete_file(f"{container}/sas/x.parquet")
    assert "sig=" not in repr(store)


def test_sas_token_without_read_permission_is_refused_by_arrow_reads(
    connector: CloudDataConnector, server: AzuriteServer, container: str, lake: AzureBlobConnector
) -> None:
    lake.write(sample_table(3), "private/x.parquet")
    list_only = generate_account_sas(
        ACCOUNT_NAME,
        ACCOUNT_KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    store = connector.connect(
        "azure_blob",
        account_url=server.endpoint,
        account_name=ACCOUNT_NAME,
        sas_token=list_only,
        container=container,
        retry={"max_attempts": 1},
    )
    with pytest.raises(PermissionDeniedError) as caught:
        list(store.stream("private/"))
    signature = urllib.parse.parse_qs(list_only)["sig"][0]
    assert signature not in str(caught.value)


def test_default_azure_credential_without_identity_is_an_authentication_error(
    connector: CloudDataConnector, server: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in (
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "IDENTITY_ENDPOINT",
        "MSI_ENDPOINT",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no az / azd / pwsh to fall back on
    store = connector.connect(
        "azure_blob",
        account_url=server.endpoint.replace("http://", "https://"),
        account_name=ACCOUNT_NAME,
        container=container,
        retry={"max_attempts": 1},
    )
    with pytest.raises(AuthenticationError):
        store.list()


def test_wrong_key_is_an_authentication_error(
    connector: CloudDataConnector, server: AzuriteServer, container: str
) -> None:
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
    store = connector.connect(
        "azure_blob",
        account_url=server.endpoint,
        account_name=ACCOUNT_NAME,
        account_key=wrong,
        container=container,
    )
    with pytest.raises(AuthenticationError) as caught:
        store.list()
    assert wrong not in str(caught.value)
    assert store.breaker.state.value == "closed"


# -- bad input ------------------------------------------------------------------------------


def test_missing_container_and_blob_are_distinct(lake: AzureBlobConnector) -> None:
    with pytest.raises(BucketNotFoundError):
        lake.list("az://no-such-container/")
    with pytest.raises(BucketNotFoundError):
        lake.metadata("az://no-such-container/a.parquet")
    with pytest.raises(ObjectNotFoundError):
        lake.metadata("nothing/here.parquet")
    with pytest.raises(ObjectNotFoundError):
        list(lake.stream("nothing/"))


def test_corrupt_parquet_is_a_data_quality_error(lake: AzureBlobConnector) -> None:
    lake.put("bad/corrupt.parquet", b"PAR1 this is not parquet at all")
    with pytest.raises(DataQualityError):
        list(lake.stream("bad/corrupt.parquet"))
    with pytest.raises(DataQualityError):
        lake.scan("bad/corrupt.parquet")


def test_incomplete_config_is_a_configuration_error(connector: CloudDataConnector) -> None:
    with pytest.raises(ConfigurationError, match="account"):
        connector.connect("azure_blob", container="c")
    with pytest.raises(ConfigurationError, match="service principal"):
        connector.connect("azure_blob", account_name="a", tenant_id="t", client_secret="s")


# -- faults ----------------------------------------------------------------------------------


@pytest.fixture
def proxy(server: AzuriteServer) -> Iterator[FaultProxy]:
    with fault_proxy(f"http://{server.host}:{server.port}") as running:
        yield running


@pytest.fixture
def flaky(connector: CloudDataConnector, proxy: FaultProxy, container: str) -> AzureBlobConnector:
    connection = connector.connect(
        "azure_blob",
        container=container,
        breaker={"failure_threshold": 3, "reset_timeout": 3600},
        **key_options(f"{proxy.url}/{ACCOUNT_NAME}"),
    )
    assert isinstance(connection, AzureBlobConnector)
    return connection


def test_server_busy_is_retried(flaky: AzureBlobConnector, proxy: FaultProxy) -> None:
    retries: list[str] = []
    unsubscribe = events.subscribe(
        lambda event, fields: retries.append(fields["error"]) if event == "connector.retry" else None
    )
    try:
        proxy.inject("azure_busy", times=2, when=lambda method, path: method == "PUT")
        flaky.put("retry/a.bin", b"payload")
    finally:
        unsubscribe()
    assert retries == ["ThrottledError", "ThrottledError"]
    assert flaky.get("retry/a.bin") == b"payload"


def test_dropped_connections_are_retried(flaky: AzureBlobConnector, proxy: FaultProxy) -> None:
    flaky.write(sample_table(20), "drop/x.parquet")
    proxy.inject("drop", times=1, when=lambda method, path: method == "GET" and "comp=list" in path)
    assert flaky.list("drop/") == ["drop/x.parquet"]
    assert sum(batch.num_rows for batch in flaky.stream("drop/")) == 20


def test_breaker_opens_after_persistent_failure(flaky: AzureBlobConnector, proxy: FaultProxy) -> None:
    proxy.inject("azure_busy", times=None)
    with pytest.raises((ThrottledError, CircuitOpenError)):
        flaky.put("down/a.bin", b"x")
    assert flaky.breaker.state.value == "open"
    before = proxy.count()
    with pytest.raises(CircuitOpenError):
        flaky.get("down/a.bin")
    assert proxy.count() == before


def test_a_data_factory_run_output_opens_through_this_connector(
    lake: AzureBlobConnector, server: AzuriteServer, container: str
) -> None:
    from sygnify.orchestrators.azure_data_factory.connector import open_output, storage_urls

    lake.write(pl.DataFrame({"sku": ["a", "b", "c"], "units": [3, 1, 2]}), "sales/part-0.parquet")
    activity_output = {
        "rowsCopied": 3,
        "sink": {"url": f"{server.endpoint}/{container}/sales/part-0.parquet"},
        "mirror": f"https://{ACCOUNT_NAME}.blob.core.windows.net/{container}/sales/part-0.parquet",
    }
    locations = storage_urls(activity_output)
    assert len(locations) == 2
    for location in locations:
        frame = open_output(location, lake)
        assert frame.sort("sku").collect()["units"].to_list() == [3, 1, 2]
    batches = list(open_output(locations[0], lake, how="stream", batch_size=2))
    assert [batch.num_rows for batch in batches] == [2, 1]
