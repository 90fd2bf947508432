"""Hostile input through ``process()``: error policies that hold, accounts that add up, typed
errors only (issue 19, items 8 and 9).

- ``skip`` and ``dead_letter`` never raise for bad data: bad rows are dead letters with their
  reason, and a part that cannot be read at all is one dead-letter record naming the file.
- Every input row is accounted for, in every mode: ``rows_in == rows_out + dead_letters +
  rows_skipped`` for a transform that keeps every row, and ``rows_out`` is what the sink holds.
- Nothing but a :class:`~sygnify.errors.SygnifyError` leaves ``process()``: Polars, pyarrow
  and Python errors (Polars' ``PanicException``, a ``BaseException``, included) are mapped by
  :func:`~sygnify.processing.chunk.classify_error`, the original as ``__cause__``.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sygnify.errors import (
    ConnectionFailedError,
    DataQualityError,
    NotFoundError,
    PermissionDeniedError,
    QueryError,
    SchemaError,
    SygnifyError,
    TransientError,
)
from sygnify.processing import LargeDataHandler
from sygnify.processing.chunk import classify_error, errors_mapped
from sygnify.processing.executors.local import ThreadExecutor
from sygnify.processing.parts import FilePart
from sygnify.processing.result import ProcessResult
from sygnify.resilience import RetryPolicy

MODES = ["streaming", "chunked", "parallel", "incremental"]
POLICIES = ["skip", "dead_letter"]


def _good_csv(path: Path, start: int, rows: int) -> Path:
    path.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(start, start + rows)))
    return path


#: A budget below what one engine query needs: the run takes the chunk loop, which reads
#: through :class:`FilePart` (the paths whose failures these tests simulate).
CHUNK_LOOP: dict[str, Any] = {"max_memory": "64MB"}


def _run(
    source: Any,
    tmp_path: Path,
    mode: str,
    on_error: str = "raise",
    handler_options: dict[str, Any] | None = None,
    **options: Any,
) -> ProcessResult:
    """``process()`` with a dataset sink ``tmp_path/out/`` (incremental mode needs one)."""
    kwargs: dict[str, Any] = {"mode": mode, "on_error": on_error, "sink": f"{tmp_path}/out/", **options}
    if on_error == "dead_letter":
        kwargs["dead_letter"] = tmp_path / "dead"
    if mode == "incremental":
        kwargs["checkpoint"] = tmp_path / "state.json"
    handler = LargeDataHandler(chunk_size=50, progress=False, max_workers=2, **(handler_options or {}))
    with handler:
        return handler.process(source, **kwargs)


def _sink_rows(tmp_path: Path) -> int:
    files = sorted((tmp_path / "out").glob("*.parquet"))
    return sum(pq.read_metadata(f).num_rows for f in files)


def _dead(tmp_path: Path) -> pl.DataFrame:
    files = sorted((tmp_path / "dead").glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal") if files else pl.DataFrame()


def _accounted(result: ProcessResult, tmp_path: Path) -> None:
    """Every row in is out, dead-lettered or skipped; the sink holds ``rows_out``; the dead
    letters hold ``dead_letters`` rows."""
    assert result.rows_in == result.rows_out + result.dead_letters + result.rows_skipped, result.summary()
    assert _sink_rows(tmp_path) == result.rows_out
    assert _dead(tmp_path).height == result.dead_letters
    if result.dead_letters:
        assert result.dead_letter_paths


# -- files that cannot be read at all ------------------------------------------------------------


@pytest.fixture
def corrupt_parquet(tmp_path: Path) -> Path:
    """Two good Parquet files of 100 rows around one whose footer is garbage."""
    source = tmp_path / "in"
    source.mkdir()
    pq.write_table(pa.table({"a": list(range(100))}), source / "p0.parquet")
    (source / "p1.parquet").write_bytes(b"PAR1" + bytes(range(200)) + b"PAR1")
    pq.write_table(pa.table({"a": list(range(100, 200))}), source / "p2.parquet")
    return source


@pytest.mark.parametrize("mode", MODES[:3])
@pytest.mark.parametrize("on_error", POLICIES)
def test_an_unreadable_file_is_one_counted_dead_letter_naming_it(
    corrupt_parquet: Path, tmp_path: Path, mode: str, on_error: str
) -> None:
    result = _run(str(corrupt_parquet) + "/", tmp_path, mode, on_error)
    assert (result.rows_in, result.rows_out) == (201, 200)
    [error] = result.errors
    assert error.origin.endswith("p1.parquet")
    assert error.rows == 1
    assert error.action == ("dead_letter" if on_error == "dead_letter" else "skipped")
    assert "unreadable (DataQualityError)" in error.message
    _accounted(result, tmp_path)
    if on_error == "dead_letter":
        [letter] = _dead(tmp_path).to_dicts()
        assert letter["_origin"].endswith("p1.parquet")
        assert "cannot read" in letter["_error"]
        assert "p1.parquet" in letter["_error"]


@pytest.mark.parametrize("mode", MODES[:3])
def test_an_unreadable_file_under_raise_is_a_typed_error_naming_it(
    corrupt_parquet: Path, tmp_path: Path, mode: str
) -> None:
    with pytest.raises(DataQualityError, match=r"p1\.parquet") as caught:
        _run(str(corrupt_parquet) + "/", tmp_path, mode)
    assert isinstance(caught.value.__cause__, pa.ArrowException)


@pytest.fixture
def invalid_utf8(tmp_path: Path) -> Path:
    """Two good CSV files around one with invalid UTF-8, which pyarrow fails as a whole block."""
    source = tmp_path / "in"
    source.mkdir()
    _good_csv(source / "c0.csv", 0, 100)
    (source / "c1.csv").write_bytes(b"a,b\n1,\xff\n2,\xfe\xfe\n")
    _good_csv(source / "c2.csv", 100, 100)
    return source


@pytest.mark.parametrize("mode", MODES[:3])
@pytest.mark.parametrize("on_error", POLICIES)
def test_a_csv_with_invalid_utf8_does_not_end_a_skip_or_dead_letter_run(
    invalid_utf8: Path, tmp_path: Path, mode: str, on_error: str
) -> None:
    result = _run(str(invalid_utf8) + "/", tmp_path, mode, on_error)
    assert result.rows_out == 200
    assert [e.origin.rsplit("/", 1)[-1] for e in result.errors] == ["c1.csv"]
    assert "UTF" in result.errors[0].message  # the whole file (pyarrow), or its rows (text read as bytes)
    _accounted(result, tmp_path)


@pytest.mark.parametrize("mode", MODES[:3])
def test_a_part_failing_midway_keeps_the_rows_read_before(tmp_path: Path, mode: str) -> None:
    """A Parquet file whose second row group cannot be read: the first one's rows go on,
    the rest is one dead letter."""
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"a": list(range(100))}), source)  # one row group, read in 50s
    original = FilePart._batches

    def second_group_corrupt(self: FilePart, rows: int, bad: Any) -> Iterator[pa.RecordBatch]:
        batches = original(self, rows, bad)
        yield next(batches)
        raise OSError("Couldn't deserialize thrift: corrupt page header")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FilePart, "_batches", second_group_corrupt)
        patch.setattr(FilePart, "scan", lambda self: None)  # parallel would scan it with Polars
        result = _run(str(source), tmp_path, mode, "dead_letter", CHUNK_LOOP)
    assert 0 < result.rows_out < 100
    assert (result.rows_in, result.dead_letters) == (result.rows_out + 1, 1)
    [error] = result.errors
    assert "thrift" in error.message
    _accounted(result, tmp_path)


def test_a_read_failing_for_good_is_not_hidden_by_skip(tmp_path: Path) -> None:
    """Skip and dead_letter are for bad data: a store that stays unreachable ends the run."""
    source = _good_csv(tmp_path / "in.csv", 0, 10)

    def unreachable(self: FilePart, rows: int, bad: Any) -> Iterator[pa.RecordBatch]:
        raise ConnectionFailedError("connection reset")
        yield  # pragma: no cover

    retry = RetryPolicy(max_attempts=2, sleep=lambda s: None)
    handler = LargeDataHandler(progress=False, retry=retry, **CHUNK_LOOP)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FilePart, "_batches", unreachable)
        for mode in ("streaming", "chunked", "parallel"):
            with pytest.raises(TransientError):
                handler.process(str(source), mode=mode, on_error="skip")


# -- bad rows ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("on_error", POLICIES)
def test_bad_csv_lines_are_dead_letters_with_their_reason(tmp_path: Path, mode: str, on_error: str) -> None:
    source = tmp_path / "in.csv"
    lines = [f"{i},x{i}" for i in range(200)]
    lines[100] = "100,x,extra"  # one field too many
    source.write_text("a,b\n" + "\n".join(lines) + "\n")
    result = _run(str(source), tmp_path, mode, on_error)
    assert (result.rows_in, result.rows_out) == (200, 199)
    assert [(e.rows, e.error_type) for e in result.errors] == [(1, "DataQualityError")]
    assert "expected 2 fields, got 3" in result.errors[0].message
    _accounted(result, tmp_path)
    if on_error == "dead_letter":
        [letter] = _dead(tmp_path).to_dicts()
        assert letter["_raw"] == "100,x,extra"
        assert letter["_origin"] == str(source)


def test_a_chunk_that_fails_after_its_bad_rows_is_counted_once(tmp_path: Path) -> None:
    """conform() dead-letters a row that does not convert, then the transform fails the
    chunk: the chunk is one dead letter of all its rows, the bad row not counted twice."""
    batches = iter(pa.table({"a": ["1", "x", "300"]}).to_batches())  # a stream: the chunk loop

    def strict(lf: pl.LazyFrame) -> pl.LazyFrame:
        return lf.with_columns(pl.col("a").cast(pl.UInt8, strict=True))  # 300 does not fit

    result = LargeDataHandler(progress=False).process(
        batches,
        transform=strict,
        mode="chunked",
        schema={"a": pl.Int64},
        on_error="dead_letter",
        dead_letter=tmp_path / "dead",
    )
    assert (result.rows_in, result.rows_out, result.dead_letters) == (3, 0, 3)
    assert [e.rows for e in result.errors] == [3]
    assert _dead(tmp_path).height == 3


@pytest.mark.parametrize("executor", ["threads", "processes"])
@pytest.mark.parametrize("on_error", ["raise", *POLICIES])
def test_parallel_rows_out_is_what_the_sink_holds(tmp_path: Path, executor: str, on_error: Any) -> None:
    source = tmp_path / "in"
    source.mkdir()
    _good_csv(source / "g0.csv", 0, 100)
    _good_csv(source / "g1.csv", 100, 100)
    if on_error != "raise":
        (source / "g2.csv").write_text("a,b\n1,2,3\n")  # its one row is bad
    handler = LargeDataHandler(chunk_size=30, progress=False, executor=executor, max_workers=2)
    kwargs: dict[str, Any] = {"dead_letter": tmp_path / "dead"} if on_error == "dead_letter" else {}
    with handler:
        result = handler.process(
            str(source) + "/", mode="parallel", sink=str(tmp_path / "out") + "/", on_error=on_error, **kwargs
        )
    assert result.rows_out == 200
    assert result.rows_in == 200 + (on_error != "raise")
    _accounted(result, tmp_path)


# -- typed errors only ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_line_with_extra_fields_under_raise_is_a_data_quality_error_naming_the_file(
    tmp_path: Path, mode: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("a,b\n1,x\n2,y,z\n3,w\n")
    for schema in (None, {"a": pl.Int64, "b": pl.String}):
        with pytest.raises(DataQualityError, match=r"in\.csv") as caught:
            _run(str(source), tmp_path, mode, schema=schema)
        assert caught.value.__cause__ is not None


@pytest.mark.parametrize("mode", MODES)
def test_a_column_typo_is_a_schema_error(tmp_path: Path, mode: str) -> None:
    source = _good_csv(tmp_path / "in.csv", 0, 10)
    with pytest.raises(SchemaError) as caught:
        _run(str(source), tmp_path, mode, transform=lambda lf: lf.select("nope"))
    assert isinstance(caught.value.__cause__, pl.exceptions.ColumnNotFoundError)


def _panics(lf: pl.LazyFrame) -> pl.LazyFrame:
    raise pl.exceptions.PanicException("index out of bounds: the len is 0 but the index is 0")


@pytest.mark.parametrize("mode", MODES)
def test_a_polars_panic_is_a_typed_error(tmp_path: Path, mode: str) -> None:
    source = _good_csv(tmp_path / "in.csv", 0, 10)
    with pytest.raises(DataQualityError) as caught:
        _run(str(source), tmp_path, mode, transform=_panics)
    assert isinstance(caught.value.__cause__, pl.exceptions.PanicException)
    skipped = _run(str(source), tmp_path / "again", mode, "skip", transform=_panics)
    assert (skipped.rows_in, skipped.rows_out, skipped.rows_skipped) == (10, 0, 10)


def test_a_panic_in_a_worker_process_is_a_typed_error(tmp_path: Path) -> None:
    source = _good_csv(tmp_path / "in.csv", 0, 10)
    with (
        LargeDataHandler(progress=False, executor="processes", max_workers=1) as handler,
        pytest.raises(DataQualityError, match="PanicException"),
    ):
        handler.process(str(source), transform=_panics, mode="parallel")


def test_the_last_line_maps_whatever_a_mode_lets_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def leaks(job: object) -> ProcessResult:
        raise pl.exceptions.ComputeError("found more fields than defined in 'Schema'")

    monkeypatch.setattr("sygnify.processing.handler.run_streaming", leaks)
    with pytest.raises(DataQualityError, match="found more fields") as caught:
        LargeDataHandler(progress=False).process(pl.DataFrame({"a": [1]}), mode="streaming")
    assert isinstance(caught.value.__cause__, pl.exceptions.ComputeError)


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        (pl.exceptions.ColumnNotFoundError("nope"), SchemaError),
        (pl.exceptions.SchemaError("dtypes differ"), SchemaError),
        (pa.ArrowTypeError("int64 vs string"), SchemaError),
        (pl.exceptions.ComputeError("found more fields than defined in 'Schema'"), DataQualityError),
        (pl.exceptions.InvalidOperationError("conversion from `str` to `i64` failed"), DataQualityError),
        (pl.exceptions.PanicException("called `Option::unwrap()` on a `None` value"), DataQualityError),
        (pa.ArrowInvalid("CSV parse error"), DataQualityError),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), DataQualityError),
        (FileNotFoundError("in.csv"), NotFoundError),
        (PermissionError(13, "Permission denied"), PermissionDeniedError),
        (OSError(28, "No space left on device"), QueryError),
        (OSError("Couldn't deserialize thrift: TProtocolException"), DataQualityError),
        (KeyError("a transform's own bug"), QueryError),
    ],
)
def test_the_one_error_map(raw: BaseException, mapped: type[SygnifyError]) -> None:
    error = classify_error(raw, "00000002", "in.csv")
    assert type(error) is mapped
    assert error.__cause__ is raw
    assert error.resource == "in.csv"
    assert "chunk 00000002 (in.csv)" in error.message
    with pytest.raises(mapped) as caught, errors_mapped("in.csv"):
        raise raw
    assert caught.value.__cause__ is raw


def test_a_sygnify_error_is_not_wrapped_again() -> None:
    original = SchemaError("missing columns ['a']", resource="in.csv")
    assert classify_error(original, "00000000", "x") is original
    with pytest.raises(SchemaError) as caught, errors_mapped("in.csv"):
        raise original
    assert caught.value is original
    assert caught.value.__cause__ is None


def test_a_failing_streaming_run_never_hangs_on_its_own_threads() -> None:
    """The writer raises on the first chunk while the reader is still fetching the next one:
    the transform thread, left waiting for a chunk that never comes, must still stop (it
    waited for ever, and ``process()`` with it)."""
    fetching = threading.Event()

    def slow_source() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch({"a": [300]})
        fetching.set()
        time.sleep(0.3)  # still fetching when the writer has raised and stopped the stages
        yield pa.record_batch({"a": [1]})

    def strict(lf: pl.LazyFrame) -> pl.LazyFrame:
        return lf.with_columns(pl.col("a").cast(pl.UInt8, strict=True))

    raised: list[BaseException] = []

    def run() -> None:
        try:
            handler = LargeDataHandler(progress=False, chunk_size=1)  # a chunk per batch
            handler.process(slow_source(), transform=strict, mode="streaming")
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "process() hung"
    assert fetching.is_set()
    [error] = raised
    assert isinstance(error, DataQualityError)


def test_collecting_a_handler_never_waits_for_its_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector may run ``__del__`` in any thread, holding any lock (a run's queue, mid-put,
    or the one ``Thread.start`` takes): ``__del__`` neither waits for the executor's workers nor
    starts a thread; it abandons the pool, which stops once its workers are idle."""
    release = threading.Event()
    stopped: list[str] = []

    class SlowToStop(ThreadExecutor):
        def close(self) -> None:  # what __del__ must not call: it waits
            release.wait(30)
            stopped.append("close")
            super().close()

        def abandon(self) -> None:
            stopped.append("abandon")
            super().abandon()

    monkeypatch.setattr(
        "sygnify.processing.handler.make_executor", lambda name, **options: SlowToStop(max_workers=1)
    )
    handler = LargeDataHandler(progress=False, executor="threads")
    assert handler.process(pl.DataFrame({"a": [1, 2]}), mode="parallel").rows_out == 2
    threads = threading.active_count()
    del handler
    gc.collect()  # returns at once
    assert stopped == ["abandon"]
    assert threading.active_count() <= threads  # no thread started to stop it
    release.set()
