"""atomic_write on a real object store (S3, via moto): the target appears complete or not at all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

import boto3
import pyarrow.fs as pafs
import pytest

from sygnify.io.files import TEMP_PREFIX, atomic_write, glob_regex
from tests.connectors._emulated import optional_emulator, required
from tests.emulators.moto import MotoServer, moto_server

pytestmark = pytest.mark.emulator

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing-secret"}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer | None]:
    yield from optional_emulator(moto_server)


@pytest.fixture
def store(moto: MotoServer | None) -> tuple[pafs.S3FileSystem, str, Any]:
    server = required(moto, "moto server could not be installed or started")
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", **CREDENTIALS)
    bucket = f"sygnify-atomic-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    filesystem = pafs.S3FileSystem(
        endpoint_override=server.endpoint,
        access_key=CREDENTIALS["aws_access_key_id"],
        secret_key=CREDENTIALS["aws_secret_access_key"],
        region="us-east-1",
    )
    return filesystem, bucket, client


def keys(client: Any, bucket: str) -> list[str]:
    """The bucket's objects, directory markers left out.

    pyarrow's S3 filesystem keeps a "directory" alive with a marker key (``out/``) when it
    deletes or moves the last object under it; a marker holds no data and no glob names it.
    """
    listed = client.list_objects_v2(Bucket=bucket)
    every = sorted(item["Key"] for item in listed.get("Contents", []))
    markers = [key for key in every if key.endswith("/")]
    assert not any(glob_regex("**").match(key) for key in markers)
    return [key for key in every if key not in markers]


def test_a_write_that_fails_half_way_leaves_no_object(store: tuple[pafs.S3FileSystem, str, Any]) -> None:
    filesystem, bucket, client = store

    def half_then_fail(out: BinaryIO) -> None:
        out.write(b"x" * 6 * 1024 * 1024)  # past one multipart part: an upload is under way
        raise RuntimeError("the producer died")

    with pytest.raises(RuntimeError, match="the producer died"):
        atomic_write(f"{bucket}/out/part-0.parquet", half_then_fail, filesystem=filesystem)
    assert keys(client, bucket) == []  # no partial target, and the temporary was deleted


def test_a_failed_write_keeps_the_previous_object(store: tuple[pafs.S3FileSystem, str, Any]) -> None:
    filesystem, bucket, client = store
    atomic_write(f"{bucket}/state.json", lambda out: out.write(b'{"v": 1}'), filesystem=filesystem)

    def fail(out: BinaryIO) -> None:
        out.write(b'{"v": 2, "trunc')
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(f"{bucket}/state.json", fail, filesystem=filesystem)
    body = client.get_object(Bucket=bucket, Key="state.json")["Body"].read()
    assert body == b'{"v": 1}'
    assert keys(client, bucket) == ["state.json"]


def test_a_successful_write_leaves_exactly_the_target(store: tuple[pafs.S3FileSystem, str, Any]) -> None:
    filesystem, bucket, client = store
    seen_while_writing: list[list[str]] = []

    def write(out: BinaryIO) -> int:
        written = out.write(b"a" * 6 * 1024 * 1024)
        out.flush()
        seen_while_writing.append(keys(client, bucket))
        return written + out.write(b"end")

    assert atomic_write(f"{bucket}/out/data.bin", write, filesystem=filesystem) == 6 * 1024 * 1024 + 3
    assert keys(client, bucket) == ["out/data.bin"]
    body = client.get_object(Bucket=bucket, Key="out/data.bin")["Body"].read()
    assert len(body) == 6 * 1024 * 1024 + 3
    assert body.endswith(b"end")
    # While it was written, the target did not exist, and whatever else did is hidden.
    (during,) = seen_while_writing
    assert "out/data.bin" not in during
    assert not any(glob_regex("**").match(key) for key in during)
    assert all(key.startswith(f"out/{TEMP_PREFIX}") for key in during)
