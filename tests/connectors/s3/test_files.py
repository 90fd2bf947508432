"""open(), copy()/move() and presigned URLs of the s3 connector, against moto over the wire (issue #13)."""

from __future__ import annotations

import hashlib
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest

from sygnify import CloudDataConnector, events
from sygnify.connectors.s3.connector import S3Connector
from sygnify.errors import ConfigurationError
from tests.connectors import _object_files as checks
from tests.connectors._emulated import emulator_fixtures
from tests.connectors._fault_proxy import FaultProxy, fault_proxy
from tests.emulators.moto import MotoServer, moto_server

pytestmark = pytest.mark.emulator

MiB = 1024 * 1024
FAST_RETRY = {"max_attempts": 4, "initial_delay": 0.001, "max_delay": 0.01, "jitter": 0.0}
PART = 5 * MiB

moto, server = emulator_fixtures(moto_server, "moto server could not be installed or started", session="moto")


def raw_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )


def options(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing-secret",
        "retry": FAST_RETRY,
        "part_size": PART,
        **extra,
    }


def new_bucket(endpoint: str) -> str:
    name = f"sygnify-{uuid.uuid4().hex[:12]}"
    raw_client(endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def lake(server: MotoServer) -> Iterator[S3Connector]:
    with CloudDataConnector(environ={}) as connector:
        connection = connector.connect("s3", bucket=new_bucket(server.endpoint), **options(server.endpoint))
        assert isinstance(connection, S3Connector)
        yield connection


def test_open_reads_parquet_zip_and_text_by_ranges(lake: S3Connector) -> None:
    checks.check_reads_parquet_zip_and_text(lake)


def test_open_refuses_missing_objects_and_bad_names(lake: S3Connector) -> None:
    checks.check_open_refuses_missing_and_bad_names(lake)


def test_writer_publishes_a_multipart_object_on_close_only(lake: S3Connector) -> None:
    checks.check_writes_publish_on_close_only(lake, PART)


def test_exception_inside_with_leaves_no_object_and_no_upload(lake: S3Connector, server: MotoServer) -> None:
    checks.check_exception_inside_with_leaves_no_object(lake, PART)
    pending = raw_client(server.endpoint).list_multipart_uploads(Bucket=lake.config.bucket)
    assert pending.get("Uploads", []) == []  # the aborted multipart upload left no parts behind


def test_copy_and_move_across_buckets(lake: S3Connector, server: MotoServer) -> None:
    checks.check_copy_and_move(lake, f"s3://{new_bucket(server.endpoint)}")


def test_objects_beyond_the_single_copy_limit_are_copied_in_parts(
    lake: S3Connector, server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = bytes(range(256)) * (11 * MiB // 256)
    lake.put("big/src.bin", payload, content_type="application/x-test", metadata={"k": "v"})
    monkeypatch.setattr(lake, "single_copy_limit", 6 * MiB)  # 5 GiB in real life
    parts: list[str] = []
    unsubscribe = events.subscribe(
        lambda event, fields: parts.append(fields["operation"]) if event == "connector.call" else None
    )
    try:
        info = lake.copy("big/src.bin", "big/dst.bin")
    finally:
        unsubscribe()
    assert parts.count("copy part") == 3  # 11 MiB in parts of 5 MiB, copied on the server
    assert (info.size, info.content_type, dict(info.metadata)) == (
        len(payload),
        "application/x-test",
        {"k": "v"},
    )
    assert hashlib.sha256(lake.get("big/dst.bin")).digest() == hashlib.sha256(payload).digest()


def test_presigned_urls_get_and_put_with_a_plain_http_client(lake: S3Connector) -> None:
    # A Content-Type of its own: urllib's default (form-encoded) makes moto parse the body as a form.
    checks.check_presigned_get_and_put(lake, put_headers={"Content-Type": "text/csv"})
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(lake.presigned_url("files/x", expires=90)).query)
    # SigV4 query signing: S3 refuses the URL 90 s after X-Amz-Date (moto does not check expiry).
    assert query["X-Amz-Expires"] == ["90"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]


def test_anonymous_connection_cannot_presign(server: MotoServer) -> None:
    with CloudDataConnector(environ={}) as connector:
        anonymous = connector.connect(
            "s3", bucket="public", endpoint_url=server.endpoint, region="us-east-1", anonymous=True
        )
        assert isinstance(anonymous, S3Connector)
        with pytest.raises(ConfigurationError, match="anonymous"):
            anonymous.presigned_url("x.csv")


# -- faults ----------------------------------------------------------------------------------


@pytest.fixture
def proxy(server: MotoServer) -> Iterator[FaultProxy]:
    with fault_proxy(server.endpoint) as running:
        yield running


def test_a_ranged_read_in_open_recovers_from_one_503(server: MotoServer, proxy: FaultProxy) -> None:
    bucket = new_bucket(server.endpoint)
    raw_client(server.endpoint).put_object(Bucket=bucket, Key="f/t.parquet", Body=checks.parquet_bytes())
    with CloudDataConnector(environ={}) as connector:
        flaky = connector.connect("s3", bucket=bucket, **options(proxy.url))
        assert isinstance(flaky, S3Connector)
        retries: list[str] = []
        unsubscribe = events.subscribe(
            lambda event, fields: retries.append(fields["error"]) if event == "connector.retry" else None
        )
        try:
            with flaky.open("f/t.parquet") as handle:
                before = proxy.count("GET", "t.parquet")
                proxy.inject("s3_slowdown", times=1, when=lambda method, path: method == "GET")
                table = pq.ParquetFile(handle).read(columns=["id"])
        finally:
            unsubscribe()
    assert table.num_rows == 20_000
    assert retries == ["ThrottledError"]
    assert proxy.count("GET", "t.parquet") - before >= 2  # the refused range, then the same range again
