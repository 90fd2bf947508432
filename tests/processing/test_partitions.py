"""LargeDataHandler over hive-partitioned directories (local and ``s3://`` on moto): the
partition columns come back as the connectors write and read them, in every mode."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.local.connector import LocalConnector
from sygnify.connectors.s3.connector import S3Connector
from sygnify.processing import FileSource, LargeDataHandler
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.moto import MotoServer, moto_server
from tests.io.test_partitions import PARTITION_BY, ROUND_TRIP

moto, server = emulator_fixtures(moto_server, "moto server could not be installed or started", session="moto")

MODES = ["streaming", "chunked", "parallel"]


def _expected() -> pl.DataFrame:
    frame = pl.from_arrow(ROUND_TRIP)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _check(source: FileSource, mode: str) -> None:
    source.refresh()
    result = LargeDataHandler(chunk_size=3, progress=False).process(source, mode=mode)  # type: ignore[arg-type]
    assert result.output is not None
    out = result.output.sort("v").select(ROUND_TRIP.column_names)
    assert out.schema == _expected().schema
    assert out.equals(_expected())


@pytest.mark.parametrize("mode", MODES)
def test_local_partitioned_directory(tmp_path: Path, mode: str) -> None:
    with CloudDataConnector(environ={}) as hub:
        lake = hub.connect("local", root=tmp_path)
        assert isinstance(lake, LocalConnector)
        lake.write(ROUND_TRIP, "sp/", partition_by=PARTITION_BY)
    source = FileSource(str(tmp_path / "sp"))
    assert source.schema().field("n").type == pa.int64()
    _check(source, mode)


@pytest.fixture
def s3_fs(server: MotoServer) -> tuple[str, pafs.S3FileSystem, dict[str, Any]]:
    bucket = f"sygnify-{uuid.uuid4().hex[:12]}"
    options = {
        "endpoint_url": server.endpoint,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing-secret",
    }
    fs = pafs.S3FileSystem(
        endpoint_override=server.endpoint,
        access_key="testing",
        secret_key="testing-secret",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    fs.create_dir(bucket)
    return bucket, fs, options


@pytest.mark.emulator
@pytest.mark.parametrize("mode", MODES)
def test_s3_partitioned_prefix(s3_fs: tuple[str, pafs.S3FileSystem, dict[str, Any]], mode: str) -> None:
    bucket, fs, options = s3_fs
    with CloudDataConnector(environ={}) as hub:
        lake = hub.connect("s3", bucket=bucket, **options)
        assert isinstance(lake, S3Connector)
        lake.write(ROUND_TRIP, "sp/", partition_by=PARTITION_BY)
    _check(FileSource(f"{bucket}/sp/", filesystem=fs), mode)
