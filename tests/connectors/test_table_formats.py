"""Delta Lake and Iceberg tables through the local, S3 (moto) and Azure Blob (Azurite) connectors.

Every backend runs the same tests: deltalake and pyiceberg talk to the emulators over the
wire with the credentials the connector's own configuration holds.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import deltalake
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from azure.storage.blob import BlobServiceClient

from sygnify import CloudDataConnector
from sygnify.errors import ConfigurationError, NotFoundError, SchemaError
from sygnify.io.tables import storage_options_of
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AzuriteServer, azurite_server
from tests.emulators.moto import MotoServer, moto_server

pytestmark = pytest.mark.emulator

moto, s3_server = emulator_fixtures(
    moto_server, "moto server could not be installed or started", session="moto", name="s3_server"
)
azurite, azure_server = emulator_fixtures(
    azurite_server, "Azurite could not be installed or started", session="azurite", name="azure_server"
)

# Azurite from 3.37 answers the `startFrom` listings delta-rs uses for a table's log (3.35
# did not: every commit after the second failed, delta-io/delta-rs#4414).
BACKENDS = ["local", "s3", "azure"]
FIRST = pa.table({"id": pa.array([1, 2], pa.int64()), "v": ["a", "b"]})


@pytest.fixture(params=BACKENDS)
def lake(request: pytest.FixtureRequest, connector: CloudDataConnector, tmp_path: Path) -> Any:
    """A connection of each backend, on a fresh bucket/container/root."""
    if request.param == "local":
        return connector.connect("local", name="lake", root=tmp_path / "root", tables={"t": "t/", "p": "p/"})
    name = f"sygnify-{uuid.uuid4().hex[:12]}"
    if request.param == "s3":
        server: MotoServer = request.getfixturevalue("s3_server")
        keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing-secret"}
        boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", **keys).create_bucket(
            Bucket=name
        )
        return connector.connect(
            "s3",
            name="lake",
            bucket=name,
            tables={"t": "t/", "p": "p/"},
            endpoint_url=server.endpoint,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing-secret",
        )
    azure: AzuriteServer = request.getfixturevalue("azure_server")
    BlobServiceClient.from_connection_string(azure.connection_string).create_container(name)
    return connector.connect(
        "azure_blob",
        name="lake",
        container=name,
        tables={"t": "t/", "p": "p/"},
        account_url=azure.endpoint,
        account_name=ACCOUNT_NAME,
        account_key=ACCOUNT_KEY,
    )


def _rows(lake: Any, source: str, **options: Any) -> list[dict[str, Any]]:
    batches = list(lake.stream(source, **options))
    table = pa.Table.from_batches(batches) if batches else pa.table({})
    return sorted(table.to_pylist(), key=lambda row: row["id"])


def _scanned(lake: Any, source: str, **options: Any) -> list[dict[str, Any]]:
    frame = lake.scan(source, **options).collect()
    return sorted(frame.to_dicts(), key=lambda row: row["id"])


# -- Delta: writes --------------------------------------------------------------------------


def test_delta_append_and_overwrite_are_commits_read_by_stream_scan_and_dataset(lake: Any) -> None:
    first = lake.write(FIRST, "t/", format="delta")
    assert first.rows == 2
    assert first.paths == ["t/_delta_log/00000000000000000000.json"]
    lake.write(pa.table({"id": [3], "v": ["c"]}), "t/", format="delta", mode="append")
    expected = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
    # found by its _delta_log/ (no format=), and named by format="delta"
    assert _rows(lake, "t/") == expected
    assert _scanned(lake, "t/", format="delta") == expected
    if lake.type_name != "local":  # the local connector has no dataset()
        assert lake.dataset("t/").to_table().num_rows == 3
    result = lake.write(pa.table({"id": [9], "v": ["z"]}), "t/", format="delta", mode="overwrite")
    assert result.paths == ["t/_delta_log/00000000000000000002.json"]
    assert _rows(lake, "t/") == [{"id": 9, "v": "z"}]
    # the overwritten version is still there, by time travel
    assert _rows(lake, "t/", version=1) == expected
    assert _scanned(lake, "t/", version=0) == FIRST.to_pylist()


def test_delta_merge_updates_matched_rows_and_inserts_the_others(lake: Any) -> None:
    lake.write(FIRST, "t/", format="delta")
    lake.write(pa.table({"id": [2, 3], "v": ["B", "c"]}), "t/", format="delta", mode="merge", merge_on=["id"])
    assert _rows(lake, "t/") == [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]
    # a merge into a table that does not exist creates it
    lake.write(FIRST, "fresh/", format="delta", mode="merge", merge_on=["id"])
    assert _rows(lake, "fresh/") == FIRST.to_pylist()


def test_delta_schema_changes_need_schema_mode(lake: Any) -> None:
    lake.write(FIRST, "t/", format="delta")
    added = pa.table({"id": [3], "v": ["c"], "extra": [1.5]})
    with pytest.raises(SchemaError, match="schema_mode='merge'"):
        lake.write(added, "t/", format="delta")
    with pytest.raises(SchemaError, match="extra"):
        lake.write(added, "t/", format="delta", mode="merge", merge_on=["id"])
    with pytest.raises(SchemaError):
        lake.write(pa.table({"id": ["x"], "v": ["c"]}), "t/", format="delta")  # retyped id
    lake.write(added, "t/", format="delta", schema_mode="merge")
    assert _rows(lake, "t/") == [
        {"id": 1, "v": "a", "extra": None},
        {"id": 2, "v": "b", "extra": None},
        {"id": 3, "v": "c", "extra": 1.5},
    ]


def test_delta_partition_by_is_the_tables_partitioning(lake: Any) -> None:
    data = pa.table({"id": [1, 2, 3], "region": ["eu", "us", "eu"]})
    lake.write(data, "p/", format="delta", partition_by=["region"])
    if lake.type_name != "local":
        assert any("region=eu/" in path for path in lake.dataset("p/").files)
    else:
        assert (Path(lake.root) / "p" / "region=eu").is_dir()
    eu = _rows(lake, "p/", filter=pc.field("region") == "eu", columns=["id", "region"])
    assert eu == [{"id": 1, "region": "eu"}, {"id": 3, "region": "eu"}]
    with pytest.raises(ConfigurationError, match="partitioned by"):
        lake.write(data, "p/", format="delta", partition_by=["id"])


def test_delta_time_travel_by_version_and_as_of(lake: Any) -> None:
    lake.write(FIRST, "t/", format="delta")
    # Delta finds a version by its commit file's modification time, which stores keep in seconds.
    time.sleep(1.1)
    between = datetime.now(timezone.utc)
    time.sleep(1.1)
    lake.write(pa.table({"id": [3], "v": ["c"]}), "t/", format="delta")
    assert len(_rows(lake, "t/", version=0)) == 2
    assert len(_rows(lake, "t/", as_of=between)) == 2
    assert len(_scanned(lake, "t/", as_of=between.isoformat())) == 2
    assert len(_scanned(lake, "t/")) == 3
    with pytest.raises(NotFoundError, match="no version 7"):
        list(lake.stream("t/", version=7))
    with pytest.raises(NotFoundError, match="as of 2000-01-01"):
        lake.scan("t/", as_of="2000-01-01")
    with pytest.raises(ConfigurationError, match="as_of must be"):
        list(lake.stream("t/", as_of="yesterday"))
    with pytest.raises(ConfigurationError, match="not both"):
        list(lake.stream("t/", version=0, as_of=between))


def test_delta_bad_input_is_a_typed_error(lake: Any) -> None:
    with pytest.raises(ConfigurationError, match="merge_on"):
        lake.write(FIRST, "t/", format="delta", mode="merge")
    with pytest.raises(ConfigurationError, match="format='delta'"):
        lake.write(FIRST, "t/", mode="merge", merge_on=["id"])
    with pytest.raises(ConfigurationError, match="merge_on columns not in the data: nope"):
        lake.write(FIRST, "t/", format="delta", mode="merge", merge_on=["nope"])
    with pytest.raises(ConfigurationError, match="write_id"):
        lake.write(FIRST, "t/", format="delta", write_id="w1")
    with pytest.raises(NotFoundError, match="no Delta table"):
        list(lake.stream("missing/", format="delta"))
    lake.write(FIRST, "plain/")
    with pytest.raises(ConfigurationError, match="not a Delta table"):
        list(lake.stream("plain/", version=0))
    lake.write(FIRST, "t/", format="delta")
    with pytest.raises(ConfigurationError, match="nope"):
        list(lake.stream("t/", columns=["nope"]))
    with pytest.raises(ConfigurationError, match="own schema"):
        lake.scan("t/", include_file_paths="file")


def test_delta_table_written_by_sygnify_is_read_by_deltalake_and_polars(lake: Any) -> None:
    lake.write(FIRST, "t/", format="delta")
    if lake.type_name == "local":
        url, options = str(Path(lake.root) / "t"), None
    else:
        bucket = lake.config.bucket if lake.type_name == "s3" else lake.config.container
        scheme = "s3" if lake.type_name == "s3" else "az"
        url = f"{scheme}://{bucket}/t"
        options = storage_options_of(lake._polars_options())
    assert deltalake.DeltaTable(url, storage_options=options).to_pyarrow_table().num_rows == 2
    assert pl.scan_delta(url, storage_options=options).collect().height == 2


# -- Iceberg -------------------------------------------------------------------------------


@pytest.fixture
def catalog(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'iceberg.db'}"


@pytest.mark.parametrize("lake", ["local", "s3"], indirect=True)
def test_iceberg_append_overwrite_and_snapshots(lake: Any, catalog: str) -> None:
    options = {"format": "iceberg", "catalog": catalog}
    lake.write(FIRST, "ice/", **options)
    lake.write(pa.table({"id": [3], "v": ["c"]}), "ice/", **options)
    assert [row["id"] for row in _rows(lake, "ice/", **options)] == [1, 2, 3]
    assert [row["id"] for row in _scanned(lake, "ice/", **options)] == [1, 2, 3]
    assert _rows(lake, "ice/", columns=["id", "v"], filter=pc.field("id") > 2, **options) == [
        {"id": 3, "v": "c"}
    ]
    lake.write(pa.table({"id": [9], "v": ["z"]}), "ice/", mode="overwrite", **options)
    assert _rows(lake, "ice/", **options) == [{"id": 9, "v": "z"}]
    from pyiceberg.catalog.sql import SqlCatalog

    # the table is in the catalog, named after the target, and readable by pyiceberg itself
    namespace = "local" if lake.type_name == "local" else lake.config.bucket.replace("-", "_")
    properties = {}
    if lake.type_name == "s3":
        properties = {
            "s3.endpoint": lake.config.endpoint_url,
            "s3.access-key-id": "testing",
            "s3.secret-access-key": "testing-secret",
            "s3.region": "us-east-1",
        }
    table = SqlCatalog("sygnify", uri=catalog, **properties).load_table((namespace, "ice"))
    first_snapshot = table.snapshots()[0].snapshot_id
    assert table.scan().to_arrow().num_rows == 1
    assert len(_rows(lake, "ice/", version=first_snapshot, **options)) == 2
    assert lake.scan("ice/", version=first_snapshot, **options).collect().height == 2
    with pytest.raises(NotFoundError, match="no snapshot 12345"):
        list(lake.stream("ice/", version=12345, **options))


@pytest.mark.parametrize("lake", ["local", "s3"], indirect=True)
def test_iceberg_merge_and_schema_evolution(lake: Any, catalog: str) -> None:
    options = {"format": "iceberg", "catalog": catalog}
    lake.write(FIRST, "ice/", **options)
    lake.write(pa.table({"id": [2, 3], "v": ["B", "c"]}), "ice/", mode="merge", merge_on=["id"], **options)
    assert _rows(lake, "ice/", **options) == [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]
    added = pa.table({"id": [4], "v": ["d"], "extra": [1.5]})
    with pytest.raises(SchemaError, match="extra"):
        lake.write(added, "ice/", **options)
    lake.write(added, "ice/", schema_mode="merge", **options)
    assert _rows(lake, "ice/", **options)[-1] == {"id": 4, "v": "d", "extra": 1.5}


def test_iceberg_on_an_object_store_needs_a_catalog(lake: Any) -> None:
    if lake.type_name == "local":  # local defaults to a SQLite file at the root
        lake.write(FIRST, "ice/", format="iceberg")
        assert len(_rows(lake, "ice/", format="iceberg")) == 2
        return
    with pytest.raises(ConfigurationError, match="needs a catalog"):
        lake.write(FIRST, "ice/", format="iceberg")


# -- scan(schema=, include_file_paths=) on file datasets --------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ipc"])
def test_scan_schema_and_include_file_paths_on_file_datasets(lake: Any, fmt: str) -> None:
    lake.write(pa.table({"id": [1, 2], "v": ["a", "b"]}), "files/", format=fmt)
    lake.write(pa.table({"id": [3], "v": ["c"]}), "files/", format=fmt)
    frame = lake.scan(
        "files/", schema={"id": pl.Float64, "v": pl.String}, include_file_paths="file"
    ).collect()
    assert frame.schema == pl.Schema({"id": pl.Float64, "v": pl.String, "file": pl.String})
    assert sorted(frame["id"].to_list()) == [1.0, 2.0, 3.0]
    files = set(frame["file"].to_list())
    assert len(files) == 2
    if lake.type_name == "local":
        assert all(Path(path).is_file() and path.startswith(str(lake.root)) for path in files)
    else:
        scheme = "s3://" if lake.type_name == "s3" else "az://"
        assert all(path.startswith(scheme) and "/files/" in path for path in files)
    only_paths = lake.scan("files/", include_file_paths="src").collect()
    assert only_paths.columns[-1] == "src"
    assert only_paths.height == 3
    arrow_schema = pa.schema([("v", pa.string())])
    assert lake.scan("files/", schema=arrow_schema).collect().columns == ["v"]
    with pytest.raises(SchemaError, match="nope"):
        lake.scan("files/", schema={"nope": pl.Int64})
    with pytest.raises(ConfigurationError, match="include_file_paths"):
        lake.scan("files/", include_file_paths="")


def test_a_delta_read_skips_the_files_an_overwrite_removed(lake: Any) -> None:
    # The overwritten version's Parquet files stay (for time travel); only the log says which count.
    lake.write(FIRST, "t/", format="delta")
    lake.write(pa.table({"id": [9], "v": ["z"]}), "t/", format="delta", mode="overwrite")
    assert _rows(lake, "t/") == [{"id": 9, "v": "z"}]


@pytest.mark.parametrize("lake", ["azure"], indirect=True)
def test_delta_on_azure_blob_append_merge_and_time_travel(lake: Any) -> None:
    lake.write(FIRST, "t/", format="delta")
    lake.write(pa.table({"id": [2, 3], "v": ["B", "c"]}), "t/", format="delta", mode="merge", merge_on=["id"])
    assert _rows(lake, "t/") == [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]
    assert _scanned(lake, "t/", version=0) == FIRST.to_pylist()
    assert lake.dataset("t/", version=0).to_table().num_rows == 2
    with pytest.raises(SchemaError, match="schema_mode"):
        lake.write(pa.table({"id": [4], "extra": [1.0]}), "t/", format="delta")
    with pytest.raises(NotFoundError, match="no version 5"):
        list(lake.stream("t/", version=5))
    url = f"az://{lake.config.container}/t"
    options = storage_options_of(lake._polars_options())
    assert pl.scan_delta(url, storage_options=options).collect().height == 3


@pytest.mark.parametrize("lake", ["azure"], indirect=True)
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_scan_schema_and_include_file_paths_on_azure(lake: Any, fmt: str) -> None:
    test_scan_schema_and_include_file_paths_on_file_datasets(lake, fmt)


def test_sql_over_a_delta_table_reads_its_current_version(lake: Any) -> None:
    lake.write(FIRST, "t/", format="delta")
    lake.write(pa.table({"id": [9], "v": ["z"]}), "t/", format="delta", mode="overwrite")
    lake.write(pa.table({"id": [10], "v": ["y"]}), "t/", format="delta")
    rows = lake.query("SELECT id, v FROM t ORDER BY id").to_pylist()
    assert rows == [{"id": 9, "v": "z"}, {"id": 10, "v": "y"}]  # not the overwritten files
    data = pa.table({"id": [1, 2, 3], "region": ["eu", "us", "eu"]})
    lake.write(data, "p/", format="delta", partition_by=["region"])
    grouped = lake.query("SELECT region, count(*) AS n FROM p GROUP BY 1 ORDER BY 1").to_pylist()
    assert grouped == [{"region": "eu", "n": 2}, {"region": "us", "n": 1}]
