"""The s3 connector against a real moto server, over the wire, with boto3."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sygnify import CloudDataConnector, events
from sygnify.connectors.s3.connector import BucketNotFoundError, ObjectNotFoundError, S3Connector
from sygnify.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    DataQualityError,
    PermissionDeniedError,
    QueryError,
    ThrottledError,
)
from sygnify.testing.connectors import ConnectorConformance, sample_table
from tests.connectors._emulated import emulator_fixtures, format_per_target, optional_emulator, required
from tests.connectors._fault_proxy import FaultProxy, fault_proxy
from tests.emulators import REPO
from tests.emulators.moto import MotoServer, moto_server

pytestmark = pytest.mark.emulator

MiB = 1024 * 1024
FAST_RETRY = {"max_attempts": 4, "initial_delay": 0.001, "max_delay": 0.01, "jitter": 0.0}


moto, server = emulator_fixtures(moto_server, "moto server could not be installed or started", session="moto")


def base_options(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing-secret",
        "retry": FAST_RETRY,
    }


@pytest.fixture
def raw_s3(server: MotoServer) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )


@pytest.fixture
def bucket(raw_s3: Any) -> str:
    name = f"sygnify-{uuid.uuid4().hex[:12]}"
    raw_s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def lake(connector: CloudDataConnector, server: MotoServer, bucket: str) -> S3Connector:
    connection = connector.connect(
        "s3", name="lake", bucket=bucket, tables={"tx": "tx/*.parquet"}, **base_options(server.endpoint)
    )
    assert isinstance(connection, S3Connector)
    return connection


class TestS3Conformance(ConnectorConformance):
    @pytest.fixture
    def connection(self, lake: S3Connector) -> S3Connector:
        return lake

    @pytest.fixture(params=["parquet", "csv", "ipc", "json"])
    def dataset_target(self, request: pytest.FixtureRequest, lake: S3Connector) -> str:
        return f"data_{request.param}/"


@pytest.fixture(autouse=True)
def _format_per_target(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Conformance targets named data_<format>/ are written in that format."""
    format_per_target(request, monkeypatch, S3Connector)


# -- objects ------------------------------------------------------------------------------


def test_put_get_range_metadata_and_delete(lake: S3Connector, bucket: str) -> None:
    info = lake.put("docs/a.txt", b"hello world", content_type="text/plain", metadata={"owner": "ops"})
    assert (info.size, info.content_type, dict(info.metadata)) == (11, "text/plain", {"owner": "ops"})
    assert lake.get("docs/a.txt") == b"hello world"
    assert lake.get(f"s3://{bucket}/docs/a.txt", start=6, end=11) == b"world"
    assert lake.exists("docs/a.txt")
    lake.delete("docs/a.txt", "docs/never-existed.txt")
    assert not lake.exists("docs/a.txt")
    with pytest.raises(ObjectNotFoundError):
        lake.get("docs/a.txt")


def test_list_follows_pagination(connector: CloudDataConnector, server: MotoServer, bucket: str) -> None:
    small_pages = connector.connect("s3", bucket=bucket, list_page_size=2, **base_options(server.endpoint))
    assert isinstance(small_pages, S3Connector)
    for i in range(5):
        small_pages.put(f"many/{i}.bin", bytes([i]))
    small_pages.put("other/x.bin", b"x")
    assert small_pages.list("many/") == [f"many/{i}.bin" for i in range(5)]
    assert small_pages.list(f"s3://{bucket}/other/") == [f"s3://{bucket}/other/x.bin"]
    assert [info.size for info in small_pages.list_objects("many/")] == [1] * 5


def test_multipart_upload_and_ranged_download_round_trip(lake: S3Connector, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    payload = bytes(range(256)) * (12 * MiB // 256 + 7)  # > 2 parts of 5 MiB, not a multiple
    source.write_bytes(payload)
    lake_small_parts = lake
    info = lake_small_parts.upload(source, "big/big.bin")
    assert info.size == len(payload)
    assert info.etag is not None
    assert info.etag.strip('"').endswith("-2")
    target = tmp_path / "back.bin"
    assert lake.download("big/big.bin", target) == len(payload)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(payload).digest()
    buffer = io.BytesIO()
    lake.download("big/big.bin", buffer)
    assert buffer.getvalue()[:1000] == payload[:1000]


@pytest.mark.slow
def test_200mb_upload_keeps_peak_rss_well_under_the_file_size(
    server: MotoServer, bucket: str, tmp_path: Path, raw_s3: Any
) -> None:
    """The upload runs in a fresh child process that measures its own peak RSS.

    Not ``ru_maxrss``: a child inherits its parent's high-water mark across fork/exec (the
    kernel carries the pre-exec address space's peak into the child's rusage), so in a
    full test run it reported the pytest process's size, not the upload's. The kernel's
    per-address-space peak (``VmHWM``), reset just before the upload (``clear_refs``), is
    the upload's own.
    """
    script = textwrap.dedent(
        """
        import json, sys
        from sygnify import CloudDataConnector

        def status(field):
            with open("/proc/self/status") as handle:
                line = next(line for line in handle if line.startswith(field + ":"))
            return int(line.split()[1]) * 1024

        path, options = sys.argv[1], json.loads(sys.argv[2])
        size = 200 * 1024 * 1024
        block = bytes(range(256)) * 4096  # 1 MiB
        with open(path, "wb") as handle:
            for _ in range(size // len(block)):
                handle.write(block)
        with CloudDataConnector(environ={}) as connector:
            store = connector.connect("s3", **options)
            store.put("rss/warm.bin", block)  # clients, imports and pools warmed up before measuring
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # reset VmHWM to the current RSS
            before = status("VmRSS")
            info = store.upload(path, "rss/200mb.bin")
            peak = status("VmHWM")
        print(json.dumps({"size": info.size, "etag": info.etag, "before": before, "peak": peak}))
        """
    )
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to measure the child's own peak RSS")
    part_size, concurrency = 5 * MiB, 4
    options = {
        **base_options(server.endpoint),
        "bucket": bucket,
        "part_size": part_size,
        "max_concurrency": concurrency,
    }
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "200mb.bin"), json.dumps(options)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    file_size = 200 * MiB
    assert report["size"] == file_size
    assert report["etag"].strip('"').endswith("-40")  # 40 parts of 5 MiB
    growth = report["peak"] - report["before"]
    # By design at most (concurrency + 1) parts are held: 25 MiB here, plus SDK buffers
    # (~10 MiB measured). A quarter of the file is the bound; streaming it whole would be 200 MiB.
    print(f"200 MiB upload: peak RSS grew by {growth / MiB:.1f} MiB")
    assert growth < file_size // 4, f"upload grew peak RSS by {growth / MiB:.0f} MiB"
    head = raw_s3.head_object(Bucket=bucket, Key="rss/200mb.bin")
    assert head["ContentLength"] == file_size


# -- datasets -----------------------------------------------------------------------------


def test_parquet_glob_read_with_projection(lake: S3Connector, bucket: str) -> None:
    for month in (1, 2, 3):
        lake.write(sample_table(100), f"glob/2026-0{month}.parquet", mode="overwrite")
    lake.write(sample_table(10), "glob/notes.csv", mode="overwrite")
    batches = list(lake.stream(f"s3://{bucket}/glob/2026-*.parquet", columns=["id", "amount"]))
    table = pa.Table.from_batches(batches)
    assert table.column_names == ["id", "amount"]
    assert table.num_rows == 300
    frame = lake.scan(f"s3://{bucket}/glob/*.parquet").filter(pl.col("id") < 5).select("account").collect()
    assert frame.columns == ["account"]
    assert frame.height == 15


def test_partitioned_write_reads_back_partition_columns(lake: S3Connector) -> None:
    data = pl.DataFrame({"region": ["eu", "us", "eu"], "year": [2025, 2026, 2026], "amount": [1.0, 2.0, 3.0]})
    result = lake.write(data, "sales/", partition_by=["region", "year"], mode="overwrite")
    assert all(path.startswith(("sales/region=eu/", "sales/region=us/")) for path in result.paths)
    totals = lake.scan("sales/").group_by("region").agg(pl.col("amount").sum()).sort("region").collect()
    assert totals.to_dicts() == [{"region": "eu", "amount": 4.0}, {"region": "us", "amount": 2.0}]
    streamed = pa.Table.from_batches(list(lake.stream("sales/")))
    assert sorted(streamed.column("region").to_pylist()) == ["eu", "eu", "us"]
    assert sorted(streamed.column("year").to_pylist()) == [2025, 2026, 2026]


def test_single_object_append_is_refused(lake: S3Connector) -> None:
    lake.write(sample_table(3), "one.parquet", mode="overwrite")
    with pytest.raises(ConfigurationError, match="cannot append"):
        lake.write(sample_table(3), "one.parquet", mode="append")


def test_sql_over_tables_with_parameters(lake: S3Connector) -> None:
    lake.write(pl.DataFrame({"account": ["a", "b", "a"], "amount": [5, 7, 1]}), "tx/part.parquet")
    result = lake.query(
        "SELECT account, sum(amount) AS s FROM tx WHERE amount > ? GROUP BY 1 ORDER BY 1", [1]
    )
    assert result.to_pylist() == [{"account": "a", "s": 5}, {"account": "b", "s": 7}]
    injection = "a' OR '1'='1"
    assert lake.query("SELECT * FROM tx WHERE account = $acct", {"acct": injection}).num_rows == 0
    sizes = [b.num_rows for b in lake.stream("SELECT * FROM tx ORDER BY amount", batch_size=2)]
    assert sizes == [2, 1]


def test_sql_cannot_reach_files_or_unknown_tables(lake: S3Connector) -> None:
    with pytest.raises(QueryError):
        lake.query("SELECT * FROM read_parquet('/etc/passwd')")
    with pytest.raises(ObjectNotFoundError, match="table 'tx' is configured"):
        lake.query("SELECT * FROM tx")


# -- auth -----------------------------------------------------------------------------------


def test_default_credential_chain_from_environment(
    server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    with CloudDataConnector(environ={}) as connector:
        store = connector.connect("s3", endpoint_url=server.endpoint, region="us-east-1", bucket=bucket)
        store.write(sample_table(5), "env/x.parquet")
        assert store.scan("env/x.parquet").collect().height == 5


def test_named_profile(
    server: MotoServer, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[analyst]\naws_access_key_id = profile-key\naws_secret_access_key = profile-secret\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    with CloudDataConnector(environ={}) as connector:
        store = connector.connect(
            "s3", endpoint_url=server.endpoint, region="us-east-1", bucket=bucket, profile="analyst"
        )
        assert store.health().ok
        with pytest.raises(ConfigurationError, match="profile"):
            connector.connect("s3", endpoint_url=server.endpoint, bucket=bucket, profile="nobody")


def test_assume_role(server: MotoServer, bucket: str) -> None:
    with CloudDataConnector(environ={}) as connector:
        store = connector.connect(
            "s3",
            bucket=bucket,
            role_arn="arn:aws:iam::123456789012:role/reader",
            sts_endpoint_url=server.endpoint,
            **base_options(server.endpoint),
        )
        assert isinstance(store, S3Connector)
        key, _, token = store._frozen_credentials()
        assert key != "testing"
        assert token
        store.write(sample_table(4), "role/x.parquet")
        assert store.scan("role/x.parquet").collect().height == 4


def test_secrets_never_in_repr_or_errors(lake: S3Connector) -> None:
    assert "testing-secret" not in repr(lake)
    with pytest.raises(BucketNotFoundError) as caught:
        lake.get("s3://no-such-bucket-here/x")
    assert "testing-secret" not in str(caught.value)


@pytest.fixture(scope="module")
def auth_server() -> Iterator[MotoServer | None]:
    """A second moto that enforces IAM (the main one accepts any credentials)."""
    yield from optional_emulator(lambda: moto_server(name="moto-auth"))


def test_wrong_credentials_and_access_denied_are_distinct(auth_server: MotoServer | None) -> None:
    auth_server = required(auth_server, "moto server could not be started")
    admin = boto3.Session(aws_access_key_id="admin", aws_secret_access_key="admin", region_name="us-east-1")
    auth_server.set_no_auth_count(100)
    iam = admin.client("iam", endpoint_url=auth_server.endpoint)
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    admin.client("s3", endpoint_url=auth_server.endpoint).create_bucket(Bucket="guarded")
    auth_server.set_no_auth_count(0)  # from here on, IAM is enforced
    options = {
        "endpoint_url": auth_server.endpoint,
        "region": "us-east-1",
        "bucket": "guarded",
        "retry": FAST_RETRY,
    }
    with CloudDataConnector(environ={}) as connector:
        wrong = connector.connect("s3", access_key_id="AKIAWRONG", secret_access_key="nope", **options)
        with pytest.raises(AuthenticationError):
            wrong.list()
        denied = connector.connect(
            "s3", access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"], **options
        )
        with pytest.raises(PermissionDeniedError):
            denied.list()
        assert wrong.breaker.state.value == "closed"  # bad credentials are not service failures


# -- bad input ------------------------------------------------------------------------------


def test_missing_bucket_and_object_are_distinct_not_found_errors(lake: S3Connector) -> None:
    with pytest.raises(BucketNotFoundError):
        lake.list("s3://missing-bucket-xyz/")
    with pytest.raises(BucketNotFoundError):
        lake.metadata("s3://missing-bucket-xyz/a.parquet")
    with pytest.raises(BucketNotFoundError):
        list(lake.stream("s3://missing-bucket-xyz/data/"))
    with pytest.raises(ObjectNotFoundError):
        lake.metadata("nothing/here.parquet")
    with pytest.raises(ObjectNotFoundError):
        lake.scan("nothing/*.parquet")


def test_corrupt_parquet_is_a_data_quality_error(lake: S3Connector) -> None:
    lake.put("bad/corrupt.parquet", b"PAR1 this is not parquet at all")
    with pytest.raises(DataQualityError):
        list(lake.stream("bad/corrupt.parquet"))
    with pytest.raises(DataQualityError):
        lake.scan("bad/corrupt.parquet")


def test_invalid_config_is_a_configuration_error(connector: CloudDataConnector) -> None:
    with pytest.raises(ConfigurationError, match="part_size"):
        connector.connect("s3", bucket="b", part_size=1024)
    with pytest.raises(ConfigurationError, match="go together"):
        connector.connect("s3", bucket="b", access_key_id="only-the-key")
    with pytest.raises(ConfigurationError, match="not a s3 URL"):
        connector.connect("s3", bucket="bkt", region="us-east-1").list("gs://other/x")  # type: ignore[attr-defined]


def test_connections_with_the_same_config_share_one_client(
    connector: CloudDataConnector, server: MotoServer, bucket: str
) -> None:
    first = connector.connect("s3", name="one", bucket=bucket, **base_options(server.endpoint))
    second = connector.connect("s3", name="two", bucket=bucket, **base_options(server.endpoint))
    assert isinstance(first, S3Connector)
    assert isinstance(second, S3Connector)
    assert first._clients is second._clients


# -- faults ----------------------------------------------------------------------------------


@pytest.fixture
def proxy(server: MotoServer) -> Iterator[FaultProxy]:
    with fault_proxy(server.endpoint) as running:
        yield running


@pytest.fixture
def flaky(connector: CloudDataConnector, proxy: FaultProxy, bucket: str) -> S3Connector:
    connection = connector.connect(
        "s3",
        name="flaky",
        bucket=bucket,
        breaker={"failure_threshold": 3, "reset_timeout": 3600},
        **base_options(proxy.url),
    )
    assert isinstance(connection, S3Connector)
    return connection


def test_throttling_is_retried_until_it_succeeds(flaky: S3Connector, proxy: FaultProxy) -> None:
    retries: list[str] = []
    unsubscribe = events.subscribe(
        lambda event, fields: retries.append(fields["error"]) if event == "connector.retry" else None
    )
    try:
        proxy.inject("s3_slowdown", times=2, when=lambda method, path: method == "PUT")
        flaky.put("retry/a.bin", b"payload")
    finally:
        unsubscribe()
    assert retries == ["ThrottledError", "ThrottledError"]
    assert proxy.count("PUT", "retry/a.bin") == 3
    assert flaky.get("retry/a.bin") == b"payload"


def test_dropped_connections_are_retried(flaky: S3Connector, proxy: FaultProxy) -> None:
    flaky.write(sample_table(50), "drop/x.parquet")
    proxy.inject("drop", times=1, when=lambda method, path: method == "GET" and "list-type" in path)
    proxy.inject("drop", times=1, when=lambda method, path: method == "HEAD")
    assert flaky.list("drop/") == ["drop/x.parquet"]
    assert flaky.metadata("drop/x.parquet").size > 0
    assert sum(batch.num_rows for batch in flaky.stream("drop/")) == 50


def test_a_failing_part_is_retried_alone(flaky: S3Connector, proxy: FaultProxy) -> None:
    payload = bytes(range(256)) * (11 * MiB // 256)
    proxy.inject("http_500", times=1, when=lambda method, path: method == "PUT" and "partNumber=2" in path)
    flaky.put("parts/p.bin", payload)
    assert proxy.count("PUT", "partNumber=1") == 1
    assert proxy.count("PUT", "partNumber=2") == 2
    assert hashlib.sha256(flaky.get("parts/p.bin")).digest() == hashlib.sha256(payload).digest()


def test_breaker_opens_after_persistent_failure(flaky: S3Connector, proxy: FaultProxy) -> None:
    proxy.inject("s3_slowdown", times=None)
    with pytest.raises((ThrottledError, CircuitOpenError)):
        flaky.put("down/a.bin", b"x")
    assert flaky.breaker.state.value == "open"
    before = proxy.count()
    with pytest.raises(CircuitOpenError):
        flaky.get("down/a.bin")
    assert proxy.count() == before  # an open breaker sends nothing
    status = flaky.health()
    assert not status.ok
    assert status.breaker == "open"


def test_truncated_object_is_not_silently_accepted(lake: S3Connector) -> None:
    table = sample_table(1000)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    lake.put("trunc/t.parquet", buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(DataQualityError):
        list(lake.stream("trunc/t.parquet"))
