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
from sygnify.io.partitions import NULL_PARTITION, PARTITIONS_FILE
from sygnify.processing import FileSource, LargeDataHandler, ParquetSink
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.moto import MotoServer, moto_server
from tests.io.test_partitions import PARTITION_BY, ROUND_TRIP

moto, server = emulator_fixtures(moto_server, "moto server could not be installed or started", session="moto")

MODES = ["streaming", "chunked", "parallel"]

#: Partition values with a space, "/", "", nulls and an int64 past 2**31 (``cat``, ``n``).
SINK_DATA = pa.table(
    {
        "v": pa.array(range(6), pa.int64()),
        "cat": pa.array(["a b", "x/y", None, "a b", "", "x/y"], pa.string()),
        "n": pa.array([3_000_000_000, None, 1, 3_000_000_000, -(2**40), 2], pa.int64()),
    }
)


def _same_as_sink_data(back: pa.Table) -> None:
    # The handler's output is Polars' (large strings); the layout is the one stored.
    back = back.sort_by("v").select(SINK_DATA.column_names)
    assert back.schema.field("n").type == pa.int64()
    assert pa.types.is_large_string(back.schema.field("cat").type)
    assert back.cast(SINK_DATA.schema).equals(SINK_DATA)


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


@pytest.mark.parametrize("mode", ["chunked", "parallel"])
def test_parquet_sink_partitions_as_the_connectors_do(tmp_path: Path, mode: str) -> None:
    # Spaces, "/", nulls and an int64 past 2**31 in partition values: ParquetSink writes
    # them through the connectors' one hive encoding, so they read back as they went in.
    data = SINK_DATA
    sink = ParquetSink(tmp_path / "out", partition_by=["cat", "n"])
    handler = LargeDataHandler(chunk_size=4, progress=False)
    for _ in range(2):  # a rerun rewrites the same part names: no duplicated rows
        handler.process(data, mode=mode, sink=sink)  # type: ignore[arg-type]
    assert (tmp_path / "out" / PARTITIONS_FILE).is_file()
    assert (tmp_path / "out" / "cat=x%2Fy").is_dir()
    assert (tmp_path / "out" / f"cat={NULL_PARTITION}").is_dir()
    # Two chunks: (a b, x/y, null) and ("", x/y) partitions, one part each, named by label.
    parts = [p.name for p in (tmp_path / "out").rglob("*.parquet")]
    assert len(parts) == 5
    assert len(set(parts)) == 2
    assert all(name.startswith("part-") and name.endswith("-0.parquet") for name in parts)
    with CloudDataConnector(environ={}) as hub:
        lake = hub.connect("local", root=tmp_path)
        _same_as_sink_data(pa.Table.from_batches(list(lake.stream("out/"))))


@pytest.mark.emulator
def test_parquet_sink_partitions_on_s3(s3_fs: tuple[str, pafs.S3FileSystem, dict[str, Any]]) -> None:
    bucket, fs, options = s3_fs
    sink = ParquetSink(f"{bucket}/out", partition_by=["cat", "n"], filesystem=fs)
    LargeDataHandler(chunk_size=4, progress=False).process(SINK_DATA, mode="chunked", sink=sink)  # type: ignore[arg-type]
    with CloudDataConnector(environ={}) as hub:
        lake = hub.connect("s3", bucket=bucket, **options)
        _same_as_sink_data(pa.Table.from_batches(list(lake.stream("out/"))))
        assert PARTITIONS_FILE in [key.rsplit("/", 1)[-1] for key in lake.list("out/")]
