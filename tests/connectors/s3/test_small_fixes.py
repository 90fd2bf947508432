"""Small s3 fixes (issue #13): bodiless 403s, key traversal, unknown columns, zero-row writes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.s3.connector import S3Connector
from sygnify.errors import AuthenticationError, PathEscapeError, PermissionDeniedError, SchemaError
from tests.connectors._emulated import emulator_fixtures, optional_emulator, required
from tests.emulators.moto import MotoServer, moto_server

pytestmark = pytest.mark.emulator

FAST_RETRY = {"max_attempts": 2, "initial_delay": 0.001, "max_delay": 0.01, "jitter": 0.0}

moto, server = emulator_fixtures(moto_server, "moto server could not be installed or started", session="moto")


@pytest.fixture
def lake(server: MotoServer) -> Iterator[S3Connector]:
    bucket = f"sygnify-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    ).create_bucket(Bucket=bucket)
    with CloudDataConnector(environ={}) as connector:
        connection = connector.connect(
            "s3",
            bucket=bucket,
            endpoint_url=server.endpoint,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing-secret",
            retry=FAST_RETRY,
            tables={"empty": "empty/"},
        )
        assert isinstance(connection, S3Connector)
        yield connection


@pytest.fixture(scope="module")
def auth_server() -> Iterator[MotoServer | None]:
    """A moto that enforces IAM (the shared one accepts any credentials)."""
    yield from optional_emulator(lambda: moto_server(name="moto-auth-small"))


def test_wrong_keys_on_head_calls_are_authentication_errors(auth_server: MotoServer | None) -> None:
    auth_server = required(auth_server, "moto server could not be started")
    admin = boto3.Session(aws_access_key_id="admin", aws_secret_access_key="admin", region_name="us-east-1")
    auth_server.set_no_auth_count(100)
    iam = admin.client("iam", endpoint_url=auth_server.endpoint)
    iam.create_user(UserName="headless")
    key = iam.create_access_key(UserName="headless")["AccessKey"]
    s3 = admin.client("s3", endpoint_url=auth_server.endpoint)
    s3.create_bucket(Bucket="guarded-head")
    s3.put_object(Bucket="guarded-head", Key="x.parquet", Body=b"PAR1")
    auth_server.set_no_auth_count(0)  # from here on, IAM is enforced
    options: dict[str, Any] = {
        "endpoint_url": auth_server.endpoint,
        "region": "us-east-1",
        "bucket": "guarded-head",
        "retry": FAST_RETRY,
    }
    with CloudDataConnector(environ={}) as connector:
        wrong = connector.connect("s3", access_key_id="AKIAWRONG", secret_access_key="nope", **options)
        assert isinstance(wrong, S3Connector)
        for call in (
            lambda: wrong.metadata("x.parquet"),
            lambda: wrong.exists("x.parquet"),
            lambda: list(wrong.stream("x.parquet")),
            lambda: wrong.scan("x.parquet"),
        ):
            with pytest.raises(AuthenticationError, match="check the access key"):
                call()
        health = wrong.health()
        assert not health.ok
        assert health.detail.startswith("AuthenticationError")
        denied = connector.connect(
            "s3", access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"], **options
        )
        assert isinstance(denied, S3Connector)
        with pytest.raises(PermissionDeniedError) as caught:
            denied.metadata("x.parquet")
        assert not isinstance(caught.value, AuthenticationError)
        assert wrong.breaker.state.value == "closed"


@pytest.mark.parametrize("key", ["a/../b.txt", "../b.txt", "a/./b.txt", "s3://other/x/../y"])
def test_dot_segments_in_keys_are_refused_before_any_request(lake: S3Connector, key: str) -> None:
    for call in (
        lambda: lake.put(key, b"x"),
        lambda: lake.get(key),
        lambda: lake.metadata(key),
        lambda: lake.delete(key),
        lambda: lake.write(pa.table({"x": [1]}), key),
    ):
        with pytest.raises(PathEscapeError, match="plain key") as caught:
            call()
        assert caught.value.resource == key
    assert lake.list() == []  # nothing was written under another name


def test_unknown_stream_column_is_a_schema_error(lake: S3Connector) -> None:
    lake.write(pa.table({"account": ["a"], "amount": [1]}), "t.parquet")
    with pytest.raises(
        SchemaError, match=r"no column 'nope' in 't.parquet'; its columns are account, amount"
    ):
        list(lake.stream("t.parquet", columns=["nope"]))
    assert [batch.num_rows for batch in lake.stream("t.parquet", columns=["amount"])] == [1]


def test_a_zero_row_dataset_keeps_its_schema(lake: S3Connector) -> None:
    schema = pa.schema([("account", pa.string()), ("amount", pa.int64())])
    result = lake.write(schema.empty_table(), "empty/")
    assert result.rows == 0
    assert len(result.paths) == 1
    assert sum(batch.num_rows for batch in lake.stream("empty/")) == 0
    assert lake.dataset("empty/").schema == schema
    frame = lake.scan("empty/").collect()
    assert frame.height == 0
    assert frame.columns == ["account", "amount"]
    table = lake.query("SELECT * FROM empty")
    assert table.num_rows == 0
    assert table.schema == schema
