"""DeltaSink and DeltaSource through LargeDataHandler: local tables and S3 (moto) tables."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import deltalake
import polars as pl
import pyarrow as pa
import pytest

from sygnify.errors import ConfigurationError, NotFoundError, SchemaError
from sygnify.processing import LargeDataHandler
from sygnify.processing.sinks import as_sink
from sygnify.processing.sources import as_source
from sygnify.processing.tables import DeltaSink, DeltaSource, is_delta_table
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.moto import MotoServer, moto_server

moto, server = emulator_fixtures(moto_server, "moto server could not be installed or started", session="moto")

DATA = pa.table({"id": list(range(10)), "v": [float(i) for i in range(10)]})


def _values(output: Any) -> list[float]:
    frame = pl.from_arrow(output) if isinstance(output, pa.Table) else output
    assert isinstance(frame, pl.DataFrame)
    return list(frame["v"].to_list())


def _double(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.with_columns(pl.col("v") * 2)


@pytest.mark.parametrize("mode", ["chunked", "streaming"])
def test_handler_writes_one_delta_commit_per_chunk_and_reads_it_back(tmp_path: Path, mode: Any) -> None:
    out = tmp_path / "out"
    handler = LargeDataHandler(chunk_size=4)
    result = handler.process(DATA, transform=_double, mode=mode, sink=DeltaSink(out))
    assert result.rows_out == 10
    table = deltalake.DeltaTable(str(out))
    assert sorted(table.to_pyarrow_table()["v"].to_pylist()) == [2.0 * i for i in range(10)]
    assert is_delta_table(out)
    back = handler.process(DeltaSource(out), transform=_double, mode="chunked")
    assert sorted(_values(back.output)) == [4.0 * i for i in range(10)]


def test_delta_sink_overwrite_replaces_then_appends_and_merge_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "out"
    DeltaSink(out).write(DATA, "00000000")
    sink = DeltaSink(out, mode="overwrite")
    sink.write(DATA.slice(0, 2), "00000000")
    sink.write(DATA.slice(2, 2), "00000001")
    assert DeltaSource(out).total_rows() == 4
    upsert = DeltaSink(out, merge_on=["id"])
    assert upsert.idempotent
    assert not DeltaSink(out).idempotent
    changed = pa.table({"id": [0, 99], "v": [-1.0, 99.0]})
    upsert.write(changed, "00000002")
    upsert.write(changed, "00000002")  # the same chunk again, after a crash: no duplicates
    rows = sorted(DeltaSource(out).lazy().collect().rows())
    assert rows == [(0, -1.0), (1, 1.0), (2, 2.0), (3, 3.0), (99, 99.0)]


def test_delta_source_time_travel_columns_and_schema(tmp_path: Path) -> None:
    out = tmp_path / "out"
    DeltaSink(out).write(DATA, "00000000")
    DeltaSink(out, mode="overwrite").write(DATA.slice(0, 3), "00000000")
    old = DeltaSource(out, version=0, columns=["id"])
    assert old.total_rows() == 10
    assert old.schema().names == ["id"]
    assert old.lazy().collect().columns == ["id"]
    assert sum(part.rows or 0 for part in old.parts(4)) == 10
    assert DeltaSource(out).total_rows() == 3
    with pytest.raises(NotFoundError, match="no version 4"):
        DeltaSource(out, version=4).total_rows()
    with pytest.raises(NotFoundError, match="no Delta table"):
        DeltaSource(tmp_path / "missing").total_rows()
    with pytest.raises(SchemaError, match="schema_mode"):
        DeltaSink(out).write(pa.table({"id": [1], "new": ["x"]}), "00000001")
    with pytest.raises(ConfigurationError, match="merge_on columns"):
        DeltaSink(out, merge_on=["nope"]).write(DATA, "00000001")


def test_as_sink_and_as_source_take_delta_objects(tmp_path: Path) -> None:
    sink = DeltaSink(f"delta:{tmp_path / 'out'}")
    assert as_sink(sink) is sink
    sink.write(DATA, "00000000")
    source = DeltaSource(f"delta:{tmp_path / 'out'}")
    assert as_source(source) is source
    assert source.total_rows() == 10


def test_delta_sink_and_source_on_s3(server: MotoServer) -> None:
    bucket = f"sygnify-{uuid.uuid4().hex[:12]}"
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing-secret"}
    boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", **keys).create_bucket(
        Bucket=bucket
    )
    options: dict[str, Any] = {
        "aws_endpoint_url": server.endpoint,
        "aws_allow_http": "true",
        "aws_region": "us-east-1",
        **keys,
    }
    url = f"s3://{bucket}/out"
    handler = LargeDataHandler(chunk_size=4)
    handler.process(DATA, transform=_double, mode="chunked", sink=DeltaSink(url, storage_options=options))
    assert deltalake.DeltaTable(url, storage_options=options).version() == 2  # 3 chunks, 3 commits
    back = handler.process(DeltaSource(url, storage_options=options), mode="streaming")
    assert sorted(_values(back.output)) == [2.0 * i for i in range(10)]


def test_the_handler_takes_delta_paths_as_sink_and_source(tmp_path: Path) -> None:
    handler = LargeDataHandler(chunk_size=4)
    result = handler.process(DATA, transform=_double, mode="chunked", sink=f"delta:{tmp_path / 'out'}")
    assert result.rows_out == 10
    assert is_delta_table(tmp_path / "out")
    # Overwritten by a later version: a plain directory read would see both versions' files.
    handler.process(DATA.slice(0, 3), mode="chunked", sink=DeltaSink(tmp_path / "out", mode="overwrite"))
    for source in (tmp_path / "out", str(tmp_path / "out"), f"delta:{tmp_path / 'out'}"):
        back = handler.process(source, mode="chunked")
        assert sorted(_values(back.output)) == [0.0, 1.0, 2.0], source


def test_a_connector_sink_with_merge_replaces_by_upsert(tmp_path: Path) -> None:
    from sygnify import CloudDataConnector
    from sygnify.processing.sinks import ConnectorSink

    lake = CloudDataConnector().connect("local", root=tmp_path)
    sink = ConnectorSink(lake, "t/", format="delta", mode="merge", merge_on=["id"])
    sink.write(DATA, "00000000")
    sink.replace(pa.table({"id": [0], "v": [-1.0]}))
    rows = sorted(DeltaSource(tmp_path / "t").lazy().collect().rows())
    assert rows[0] == (0, -1.0)
    assert len(rows) == 10
