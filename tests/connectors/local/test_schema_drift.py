"""Schema drift across the files of one local dataset: a SchemaError, or unified on request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.local import LocalConnector
from sygnify.errors import ConfigurationError, SchemaError

FIRST = pa.table({"id": pa.array([1, 2], pa.int64()), "v": pa.array([1.0, 2.0])})
DRIFTS = {
    "added": pa.table({"id": pa.array([3], pa.int64()), "v": pa.array([3.0]), "b": ["x"]}),
    "removed": pa.table({"id": pa.array([3], pa.int64())}),
    "retyped": pa.table({"id": pa.array([3], pa.int64()), "v": ["three"]}),
}
#: What each drift's message names besides the file.
NAMED = {"added": ["'b'"], "removed": ["'v'"], "retyped": ["'v'", "string", "double"]}


def _write(root: Path, fmt: str, name: str, table: pa.Table) -> None:
    path = root / "data" / f"{name}.{'jsonl' if fmt == 'json' else fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        pl.from_arrow(table).write_csv(path)  # type: ignore[union-attr]
    else:
        pl.from_arrow(table).write_ndjson(path)  # type: ignore[union-attr]


@pytest.fixture
def open_lake(tmp_path: Path) -> Iterator[Callable[..., LocalConnector]]:
    with CloudDataConnector() as hub:

        def open_lake(**options: Any) -> LocalConnector:
            lake = hub.connect("local", root=tmp_path, tables={"t": "data/"}, **options)
            assert isinstance(lake, LocalConnector)
            return lake

        yield open_lake


def _readers(lake: LocalConnector, **options: Any) -> dict[str, Callable[[], Any]]:
    return {
        "stream": lambda: list(lake.stream("data/", **options)),
        "scan": lambda: lake.scan("data/", **options).collect(),
        "query": lambda: lake.query("SELECT * FROM t"),
    }


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
@pytest.mark.parametrize("drift", sorted(DRIFTS))
@pytest.mark.parametrize("reader", ["stream", "scan", "query"])
def test_drift_is_a_schema_error_naming_file_and_column(
    tmp_path: Path, open_lake: Callable[..., LocalConnector], fmt: str, drift: str, reader: str
) -> None:
    _write(tmp_path, fmt, "a", FIRST)
    _write(tmp_path, fmt, "b", DRIFTS[drift])
    lake = open_lake()
    with pytest.raises(SchemaError) as caught:
        _readers(lake)[reader]()
    message = str(caught.value)
    extension = "jsonl" if fmt == "json" else fmt
    assert f"data/b.{extension}" in message
    assert f"data/a.{extension}" in message
    for word in NAMED[drift]:
        assert word in message


def test_union_by_name_equals_polars_diagonal_relaxed(
    tmp_path: Path, open_lake: Callable[..., LocalConnector]
) -> None:
    later = pa.table({"id": pa.array([3], pa.int32()), "b": ["x"]})
    _write(tmp_path, "parquet", "a", FIRST)
    _write(tmp_path, "parquet", "b", later)
    expected = pl.concat([pl.from_arrow(FIRST), pl.from_arrow(later)], how="diagonal_relaxed")
    lake = open_lake(union_by_name=True)
    streamed = pl.from_arrow(pa.Table.from_batches(list(lake.stream("data/", union_by_name=True))))
    scanned = lake.scan("data/", union_by_name=True).collect()
    queried = pl.from_arrow(lake.query("SELECT * FROM t ORDER BY id"))
    for frame in (streamed, scanned, queried):
        assert isinstance(frame, pl.DataFrame)
        assert frame.sort("id").equals(expected), frame


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_union_by_name_over_text_formats(
    tmp_path: Path, open_lake: Callable[..., LocalConnector], fmt: str
) -> None:
    _write(tmp_path, fmt, "a", FIRST)
    _write(tmp_path, fmt, "b", DRIFTS["added"])
    lake = open_lake(union_by_name=True)
    scanned = lake.scan("data/", union_by_name=True).collect().sort("id")
    streamed = pl.from_arrow(pa.Table.from_batches(list(lake.stream("data/", union_by_name=True))))
    queried = pl.from_arrow(lake.query("SELECT * FROM t ORDER BY id"))
    for frame in (scanned, streamed, queried):
        assert isinstance(frame, pl.DataFrame)
        assert frame.sort("id")["b"].to_list() == [None, None, "x"]
        assert frame.columns == ["id", "v", "b"]


def test_union_by_name_refuses_types_that_do_not_promote(
    tmp_path: Path, open_lake: Callable[..., LocalConnector]
) -> None:
    _write(tmp_path, "parquet", "a", FIRST)
    _write(tmp_path, "parquet", "b", DRIFTS["retyped"])
    lake = open_lake(union_by_name=True)
    for read in _readers(lake, union_by_name=True).values():
        with pytest.raises(SchemaError, match=r"b\.parquet has column 'v' as string"):
            read()


def test_allow_missing_columns(tmp_path: Path, open_lake: Callable[..., LocalConnector]) -> None:
    _write(tmp_path, "parquet", "a", FIRST)
    _write(tmp_path, "parquet", "b", DRIFTS["removed"])
    lake = open_lake(allow_missing_columns=True)
    for read in _readers(lake, allow_missing_columns=True).values():
        result = read()
        frame = pl.from_arrow(pa.Table.from_batches(result)) if isinstance(result, list) else result
        frame = pl.from_arrow(frame) if isinstance(frame, pa.Table) else frame
        assert isinstance(frame, pl.DataFrame)
        assert frame.sort("id").to_dict(as_series=False) == {"id": [1, 2, 3], "v": [1.0, 2.0, None]}


def test_allow_missing_columns_still_refuses_extra_columns(
    tmp_path: Path, open_lake: Callable[..., LocalConnector]
) -> None:
    _write(tmp_path, "parquet", "a", FIRST)
    _write(tmp_path, "parquet", "b", DRIFTS["added"])
    lake = open_lake(allow_missing_columns=True)
    for read in _readers(lake, allow_missing_columns=True).values():
        with pytest.raises(SchemaError, match=r"b\.parquet has column 'b'"):
            read()


def test_hive_partitions_with_union_by_name(tmp_path: Path, open_lake: Callable[..., LocalConnector]) -> None:
    (tmp_path / "data" / "day=1").mkdir(parents=True)
    (tmp_path / "data" / "day=2").mkdir(parents=True)
    pq.write_table(FIRST, tmp_path / "data" / "day=1" / "a.parquet")
    pq.write_table(DRIFTS["added"], tmp_path / "data" / "day=2" / "b.parquet")
    lake = open_lake(union_by_name=True)
    scanned = lake.scan("data/", union_by_name=True).collect().sort("id")
    streamed = pl.from_arrow(pa.Table.from_batches(list(lake.stream("data/", union_by_name=True))))
    assert isinstance(streamed, pl.DataFrame)
    for frame in (scanned, streamed.sort("id")):
        assert frame["b"].to_list() == [None, None, "x"]
        assert frame["day"].to_list() == [1, 1, 2]


def test_no_drift_is_unaffected(tmp_path: Path, open_lake: Callable[..., LocalConnector]) -> None:
    _write(tmp_path, "parquet", "a", FIRST)
    _write(tmp_path, "parquet", "b", FIRST)
    lake = open_lake()
    assert pa.Table.from_batches(list(lake.stream("data/"))).num_rows == 4
    assert lake.scan("data/").collect().height == 4
    assert lake.query("SELECT count(*) AS n FROM t").to_pylist() == [{"n": 4}]


def test_both_options_at_once_are_refused(tmp_path: Path, open_lake: Callable[..., LocalConnector]) -> None:
    _write(tmp_path, "parquet", "a", FIRST)
    lake = open_lake()
    with pytest.raises(ConfigurationError, match="not both"):
        lake.scan("data/", union_by_name=True, allow_missing_columns=True)
