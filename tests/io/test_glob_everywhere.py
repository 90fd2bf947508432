"""One pattern, one set of files: the local connector, the S3 connector (moto) and
LargeDataHandler's file source (local and ``s3://``) all match through sygnify.io.files."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import polars as pl
import pyarrow.fs as pafs
import pytest

from sygnify import CloudDataConnector
from sygnify.processing import FileSource, LargeDataHandler
from tests.connectors._emulated import optional_emulator, required
from tests.emulators.moto import MotoServer, moto_server

pytestmark = pytest.mark.emulator

KEYS = [
    "a/x.parquet",
    "a/y.parquet",
    "a/_x.parquet",
    "a/.x.parquet",
    "a/2026-01.parquet",
    "a/2026-02.parquet",
    "a/sub/z.parquet",
    "a/sub/deep/w.parquet",
    "a/_tmp/v.parquet",
    "a/.staging/u.parquet",
    "ab/q.parquet",
    "top.parquet",
]
VISIBLE_UNDER_A = [
    "a/2026-01.parquet",
    "a/2026-02.parquet",
    "a/sub/deep/w.parquet",
    "a/sub/z.parquet",
    "a/x.parquet",
    "a/y.parquet",
]
# Each pattern and, worked out by hand, the keys it names.
CASES = {
    "a/*.parquet": ["a/2026-01.parquet", "a/2026-02.parquet", "a/x.parquet", "a/y.parquet"],
    "a/**/*.parquet": VISIBLE_UNDER_A,
    "a/**": VISIBLE_UNDER_A,
    "a/": VISIBLE_UNDER_A,  # a directory: every visible data file below it
    "a/?.parquet": ["a/x.parquet", "a/y.parquet"],
    "a/[xy].parquet": ["a/x.parquet", "a/y.parquet"],
    "a/2026-*.parquet": ["a/2026-01.parquet", "a/2026-02.parquet"],
    "a*/*.parquet": ["a/2026-01.parquet", "a/2026-02.parquet", "a/x.parquet", "a/y.parquet", "ab/q.parquet"],
    "*/s*/*.parquet": ["a/sub/z.parquet"],
    "a/_*.parquet": ["a/_x.parquet"],  # a hidden name spelt out
}


def parquet_naming(key: str) -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame({"name": [key]}).write_parquet(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer | None]:
    yield from optional_emulator(moto_server)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("lake")
    for key in KEYS:
        (base / key).parent.mkdir(parents=True, exist_ok=True)
        (base / key).write_bytes(parquet_naming(key))
    return base


@pytest.fixture(scope="module")
def bucket(moto: MotoServer | None) -> str:
    server = required(moto, "moto server could not be installed or started")
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )
    name = f"sygnify-glob-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    for key in KEYS:
        client.put_object(Bucket=name, Key=key, Body=parquet_naming(key))
    return name


@pytest.fixture
def aws_environment(moto: MotoServer | None, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    server = required(moto, "moto server could not be installed or started")
    for variable, value in {
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(variable, value)
    return server


def names(frame: pl.DataFrame | None) -> list[str]:
    assert frame is not None
    return sorted(frame["name"].to_list())


@pytest.mark.parametrize("pattern", list(CASES))
def test_the_same_pattern_matches_the_same_files_everywhere(
    pattern: str, root: Path, bucket: str, aws_environment: MotoServer
) -> None:
    expected = CASES[pattern]
    handler = LargeDataHandler(progress=False)
    with CloudDataConnector(environ={}) as hub:
        local = hub.connect("local", root=root)
        s3 = hub.connect(
            "s3",
            bucket=bucket,
            endpoint_url=aws_environment.endpoint,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing-secret",
        )
        assert names(local.scan(pattern).select("name").collect()) == expected, "local connector"
        assert names(pl.from_arrow(s3.dataset(pattern).to_table(columns=["name"]))) == expected, (
            "s3 connector"
        )  # type: ignore[arg-type, attr-defined]
    on_disk = handler.process(f"{root}/{pattern}", transform=[pl.col("name")], mode="chunked")
    assert names(on_disk.output) == expected, "handler, local files"
    on_s3 = handler.process(f"s3://{bucket}/{pattern}", transform=[pl.col("name")], mode="chunked")
    assert names(on_s3.output) == expected, "handler, s3:// URL"


def test_the_handler_with_an_explicit_filesystem_matches_the_same_keys(
    bucket: str, aws_environment: MotoServer
) -> None:
    filesystem = pafs.S3FileSystem(
        endpoint_override=aws_environment.endpoint,
        access_key="testing",
        secret_key="testing-secret",
        region="us-east-1",
    )
    source = FileSource(f"{bucket}/a/*.parquet", filesystem=filesystem)
    assert source.files() == [f"{bucket}/{key}" for key in CASES["a/*.parquet"]]
