"""Sources, sinks and error policies: bad CSV rows, schema drift, wrong types, retries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pytest
from polars.testing import assert_frame_equal

from sygnify import CloudDataConnector
from sygnify.errors import (
    ConfigurationError,
    ConnectionFailedError,
    DataQualityError,
    MemoryBudgetError,
    PluginNotFoundError,
    SchemaError,
)
from sygnify.processing import FileSource, LargeDataHandler, parse_memory
from sygnify.processing.parts import FilePart
from sygnify.resilience import RetryPolicy

H = LargeDataHandler(chunk_size=4, progress=False)


def _dead(directory: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(f) for f in sorted(directory.iterdir())], how="diagonal")


def _csv(path: Path) -> Path:
    path.write_text("a,b\n1,x\n2,y\n3,z,extra\n4,w\nnot-a-number,v\n6,u\n")
    return path


@pytest.mark.parametrize("mode", ["chunked", "streaming", "parallel"])
def test_bad_csv_rows_dead_lettered_with_reason(tmp_path: Path, mode: str) -> None:
    src = _csv(tmp_path / "in.csv")
    result = H.process(
        str(src),
        mode=mode,
        on_error="dead_letter",
        dead_letter=tmp_path / "dlq",
        schema={"a": pl.Int64, "b": pl.String},
    )
    assert result.output is not None
    assert result.output["a"].to_list() == [1, 2, 4, 6]
    dead = _dead(tmp_path / "dlq")
    assert dead.height == 2 == result.dead_letters
    reasons = " ".join(dead["_error"].to_list())
    assert "expected 2 fields, got 3" in reasons
    assert "a: not a valid Int64" in reasons


def test_bad_csv_rows_skip_and_raise(tmp_path: Path) -> None:
    src = _csv(tmp_path / "in.csv")
    skipped = H.process(str(src), mode="chunked", on_error="skip", schema={"a": pl.Int64, "b": pl.String})
    assert skipped.output is not None
    assert skipped.output.height == 4
    assert len(skipped.errors) == 2
    with pytest.raises(DataQualityError):
        H.process(str(src), mode="chunked", schema={"a": pl.Int64, "b": pl.String})


def test_schema_drift_between_files(tmp_path: Path) -> None:
    pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}).write_parquet(tmp_path / "1.parquet")
    pl.DataFrame({"a": [3], "c": [1.5]}).write_parquet(tmp_path / "2.parquet")
    with pytest.raises(SchemaError, match="missing columns"):
        H.process(str(tmp_path / "*.parquet"), mode="chunked")
    result = H.process(
        str(tmp_path / "*.parquet"), mode="chunked", on_error="dead_letter", dead_letter=tmp_path / "d"
    )
    assert result.output is not None
    assert result.output["a"].to_list() == [1, 2]
    assert result.errors[0].error_type == "SchemaError"
    assert result.dead_letters == 1


def test_wrong_types_and_transform_errors_are_typed(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": ["1", "oops", "3"]})
    with pytest.raises(SchemaError, match="not a valid Int64"):
        H.process(frame, mode="chunked", schema={"a": pl.Int64})

    def broken(lf: pl.LazyFrame) -> pl.LazyFrame:
        return lf.select(pl.col("missing"))

    with pytest.raises(SchemaError):
        H.process(frame, mode="chunked", transform=broken)
    result = H.process(frame, mode="chunked", transform=broken, on_error="skip")
    assert result.skipped_chunks == 1
    assert result.rows_out == 0


def test_transient_source_errors_are_retried(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pl.DataFrame({"a": list(range(10))}).write_parquet(tmp_path / "a.parquet", row_group_size=3)
    original = FilePart._batches
    failures = iter([True, False])

    def flaky(self: FilePart, rows: int, bad: object) -> Iterator[pa.RecordBatch]:
        iterator = original(self, rows, bad)  # type: ignore[arg-type]
        yield next(iterator)
        if next(failures, False):
            raise ConnectionFailedError("connection reset")
        yield from iterator

    monkeypatch.setattr(FilePart, "_batches", flaky)
    handler = LargeDataHandler(chunk_size=4, progress=False, retry=RetryPolicy(sleep=lambda s: None))
    result = handler.process(str(tmp_path / "a.parquet"), mode="chunked")
    assert result.output is not None
    assert result.output["a"].to_list() == list(range(10))


def test_sources_and_sinks_round_trip(tmp_path: Path) -> None:
    frame = pl.DataFrame({"k": ["a", "b", "a", "c", "b"], "v": [1, 2, 3, 4, 5]})
    expected = frame.with_columns(w=pl.col("v") * 2)
    transform = [(pl.col("v") * 2).alias("w")]
    arrow = frame.to_arrow()
    sources = [
        arrow,
        frame.to_pandas(),
        pa.RecordBatchReader.from_batches(arrow.schema, arrow.to_batches(max_chunksize=2)),
        iter(arrow.to_batches(max_chunksize=2)),
        frame.lazy(),
    ]
    for source in sources:
        out = H.process(source, transform=transform, mode="chunked").output
        assert out is not None
        assert_frame_equal(out, expected, check_dtypes=False)
    # sinks: IPC file, partitioned dataset, callback, connector
    H.process(frame, transform=transform, mode="chunked", sink=str(tmp_path / "o.arrow"))
    with pa_ipc.open_file(str(tmp_path / "o.arrow")) as reader:
        assert reader.read_all().num_rows == 5
    H.process(
        frame,
        transform=transform,
        mode="parallel",
        sink=pl.__name__
        and __import__("sygnify.processing", fromlist=["ParquetSink"]).ParquetSink(
            tmp_path / "parts", partition_by=["k"]
        ),
    )
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [
        "_sygnify_partitions.json",
        "k=a",
        "k=b",
        "k=c",
    ]
    seen: list[int] = []
    H.process(frame, mode="chunked", sink=lambda table: seen.append(table.num_rows))
    assert seen == [4, 1]
    with CloudDataConnector() as hub:
        lake = hub.connect("local", root=tmp_path / "lake", tables={"out": "out/"})
        H.process(frame, transform=transform, mode="chunked", sink=(lake, "out/"))
        back = H.process((lake, "out/"), mode="chunked").output
        assert back is not None
        assert back.sort("v")["w"].to_list() == [2, 4, 6, 8, 10]
        sql = H.process((lake, "SELECT sum(w) AS s FROM out"), mode="streaming").output
        assert sql is not None
        assert sql.item() == 30
    uri = H.process(FileSource(f"file://{tmp_path}/parts/**/*.parquet"), mode="chunked").output
    assert uri is not None
    assert uri.height == 5


def test_configuration_errors() -> None:
    frame = pl.DataFrame({"a": [1]})
    with pytest.raises(ConfigurationError, match="mode"):
        H.process(frame, mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="dead_letter"):
        H.process(frame, on_error="dead_letter")
    with pytest.raises(ConfigurationError, match="checkpoint"):
        H.process(frame, mode="incremental")
    with pytest.raises(PluginNotFoundError, match="available"):
        LargeDataHandler(executor="nope", progress=False).process(frame, mode="parallel")
    with pytest.raises(ConfigurationError):
        parse_memory("lots")
    wide = pl.DataFrame({"text": ["x" * 10_000]})
    with pytest.raises(MemoryBudgetError):
        LargeDataHandler(max_memory=1_000, progress=False).process(wide, mode="chunked")


def test_progress_callback_and_html(tmp_path: Path) -> None:
    calls = []
    handler = LargeDataHandler(chunk_size=2, progress=True, on_progress=calls.append)

    def eager(df: pl.DataFrame) -> pl.DataFrame:  # a step of an eager frame keeps chunks
        return df

    result = handler.process(pl.DataFrame({"a": [1, 2, 3]}), transform=eager, mode="chunked")
    assert [c.rows_in for c in calls] == [2, 3]
    assert calls[-1].total_rows == 3
    assert "<table>" in result._repr_html_()
    assert result.summary()["chunks"] == 2


def test_batch_reads_take_only_the_parquet_columns_the_transform_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    from sygnify.processing import Aggregate

    wide = pl.DataFrame({"k": [i % 3 for i in range(300)], "v": [float(i) for i in range(300)]})
    wide = wide.with_columns(*(pl.lit("unused " * 20).alias(f"pad{i}") for i in range(6)))
    wide.write_parquet(tmp_path / "1.parquet", row_group_size=50)
    wide.write_parquet(tmp_path / "2.parquet", row_group_size=50)
    asked: list[list[str] | None] = []
    original = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, *args: Any, columns: list[str] | None = None, **kwargs: Any) -> Any:
        asked.append(columns)
        return original(self, *args, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    spec = Aggregate(by="k", total=("v", "sum"))
    expected = spec.over(pl.concat([wide, wide]).lazy()).collect()
    for mode in ("chunked", "streaming"):  # under a budget below engine_bytes(), both read batches
        asked.clear()
        result = LargeDataHandler(max_memory="100MB", chunk_size=70, progress=False).process(
            str(tmp_path / "*.parquet"), transform=spec, mode=mode
        )
        assert result.output is not None
        assert_frame_equal(result.output, expected, check_exact=False)
        assert asked
        assert all(columns == ["k", "v"] for columns in asked), mode

    # A file without a column the transform uses is still a schema error, naming it.
    wide.drop("v").write_parquet(tmp_path / "3.parquet")
    with pytest.raises(SchemaError, match=r"missing columns \['v'\]"):
        LargeDataHandler(max_memory="100MB", chunk_size=70, progress=False).process(
            str(tmp_path / "*.parquet"), transform=spec, mode="chunked"
        )


@pytest.mark.parametrize("compression", ["zstd", "none", "lz4_raw"])
def test_parquet_sink_keeps_exact_arrow_types_whichever_writer_it_takes(
    tmp_path: Path, compression: str
) -> None:
    """Single files go through Polars' parallel writer when Polars holds the table as is;
    types Polars would change (a small string, a dictionary with int8 indices, fixed-size
    binary) or a codec only pyarrow knows go through pyarrow: the types read back are the
    table's. A type Parquet cannot store is a SchemaError."""
    import pyarrow.parquet as pq

    from sygnify.processing import ParquetSink

    polars_made = pl.DataFrame({"k": ["a", "b"], "v": [1.5, 2.5]}).to_arrow()
    arrow_made = pa.table(
        {
            "s": pa.array(["a", "b"], pa.string()),
            "d": pa.array(["x", "y"]).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string())),
            "f": pa.array([b"ab", b"cd"], pa.binary(2)),
        }
    )
    for name, table in (("polars", polars_made), ("arrow", arrow_made)):
        target = tmp_path / f"{name}.parquet"
        assert ParquetSink(target, compression=compression).replace(table) == [str(target)]
        back = pq.read_table(target)
        assert back.schema.remove_metadata() == table.schema.remove_metadata()
        assert back.equals(table)
    codec = pq.ParquetFile(tmp_path / "polars.parquet").metadata.row_group(0).column(0).compression
    assert codec.startswith({"zstd": "ZSTD", "none": "UNCOMPRESSED", "lz4_raw": "LZ4"}[compression])
    interval = pa.table({"gap": pa.array([pa.MonthDayNano([1, 2, 3])])})
    with pytest.raises(SchemaError, match="cannot be stored as Parquet"):
        ParquetSink(tmp_path / "gap.parquet", compression=compression).replace(interval)
    assert not (tmp_path / "gap.parquet").exists()
    with_metadata = polars_made.replace_schema_metadata({"origin": "ledger"})
    ParquetSink(tmp_path / "meta.parquet", compression=compression).replace(with_metadata)
    assert pq.read_schema(tmp_path / "meta.parquet").metadata[b"origin"] == b"ledger"
    ParquetSink(tmp_path / "plain.parquet", compression=None).replace(polars_made)  # pyarrow's "no codec"
    assert pq.read_table(tmp_path / "plain.parquet").equals(polars_made)
    for target in (tmp_path / "gap.parquet", tmp_path / "gaps", tmp_path / "by"):
        sink = ParquetSink(target, partition_by=["k"] if target.name == "by" else None)
        with pytest.raises(SchemaError, match="cannot be stored as Parquet"):
            sink.write(interval.append_column("k", pa.array([1])), "00000000")
