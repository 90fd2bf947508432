"""Every mode gives the result of one in-memory Polars computation on the same data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from sygnify.demo import generate_transactions
from sygnify.errors import DataQualityError
from sygnify.processing import Aggregate, LargeDataHandler
from sygnify.processing.executors.local import ThreadExecutor
from tests.processing.conftest import convert

MODES = ["streaming", "chunked", "parallel"]
AGG = Aggregate(
    by=["g"],
    total=("x", "sum"),
    n=("x", "count"),
    rows=("x", "len"),
    lo=("x", "min"),
    hi=("x", "max"),
    avg=("x", "mean"),
    var=("x", "var"),
    sd=("x", "std"),
    distinct=("s", "n_unique"),
)


def reference(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.group_by("g")
        .agg(
            total=pl.col("x").sum(),
            n=pl.col("x").count(),
            rows=pl.len(),
            lo=pl.col("x").min(),
            hi=pl.col("x").max(),
            avg=pl.col("x").mean(),
            var=pl.col("x").var(),
            sd=pl.col("x").std(),
            distinct=pl.col("s").n_unique(),
        )
        .sort("g", nulls_last=True)
    )


frames = (
    st.integers(1, 400)
    .flatmap(
        lambda n: st.tuples(
            st.lists(st.one_of(st.none(), st.integers(0, 5)), min_size=n, max_size=n),
            st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)), min_size=n, max_size=n),
            st.lists(st.one_of(st.none(), st.sampled_from("abcdefgh")), min_size=n, max_size=n),
        )
    )
    .map(
        lambda cols: pl.DataFrame(
            {"g": cols[0], "x": cols[1], "s": cols[2]},
            schema={"g": pl.Int64, "x": pl.Float64, "s": pl.String},
        )
    )
)


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames, chunk=st.integers(3, 120))
def test_aggregation_matches_polars(mode: str, frame: pl.DataFrame, chunk: int) -> None:
    handler = LargeDataHandler(chunk_size=chunk, max_workers=2, progress=False)
    result = handler.process(frame, transform=AGG, mode=mode)
    assert result.output is not None
    assert_frame_equal(result.output, reference(frame), check_exact=False, rel_tol=1e-6, abs_tol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=25, deadline=None)
@given(frame=frames, chunk=st.integers(3, 120))
def test_row_transform_matches_polars(mode: str, frame: pl.DataFrame, chunk: int) -> None:
    transform = [lambda lf: lf.filter(pl.col("x") > 0), (pl.col("x") * 2).alias("y")]
    handler = LargeDataHandler(chunk_size=chunk, max_workers=2, progress=False)
    result = handler.process(frame, transform=transform, mode=mode)
    expected = frame.filter(pl.col("x") > 0).with_columns((pl.col("x") * 2).alias("y"))
    assert result.output is not None
    assert_frame_equal(result.output, expected)
    assert (result.rows_in, result.rows_out) == (frame.height, expected.height)


@settings(max_examples=25, deadline=None)
@given(frame=frames, chunks=st.lists(st.integers(1, 100), min_size=2, max_size=2))
def test_approx_distinct_is_independent_of_chunking(frame: pl.DataFrame, chunks: list[int]) -> None:
    spec = Aggregate(by="g", approx=("s", "approx_n_unique"), exact=("s", "n_unique"))
    results = [
        LargeDataHandler(chunk_size=c, progress=False).process(frame, transform=spec, mode="chunked").output
        for c in chunks
    ]
    assert results[0] is not None
    assert results[1] is not None
    assert_frame_equal(results[0], results[1])
    # Few distinct values: linear counting is exact in practice.
    assert (results[0]["approx"].cast(pl.Int64) - results[0]["exact"].cast(pl.Int64)).abs().max() <= 1


def test_hyperloglog_error_is_within_its_documented_bound() -> None:
    frame = pl.DataFrame({"g": [i % 3 for i in range(300_000)], "v": list(range(300_000))})
    spec = Aggregate(by="g", approx=("v", "approx_n_unique"))
    out = (
        LargeDataHandler(chunk_size=40_000, progress=False)
        .process(frame, transform=spec, mode="chunked")
        .output
    )
    assert out is not None
    error = (out["approx"].cast(pl.Float64) / 100_000 - 1).abs().max()
    assert isinstance(error, float)
    assert error < 4 * spec.relative_error


@pytest.mark.parametrize("mode", MODES)
def test_file_workload_to_parquet_dataset(mode: str, tx_files: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = LargeDataHandler(chunk_size=9_000, max_workers=2, progress=False).process(
        str(tx_files / "*.parquet"), transform=convert, mode=mode, sink=str(out) + "/"
    )
    expected = convert(pl.scan_parquet(tx_files / "*.parquet")).collect().sort("transaction_id")
    assert_frame_equal(pl.read_parquet(out).sort("transaction_id"), expected)
    assert result.rows_in == 60_000
    assert result.rows_out == expected.height
    assert result.paths
    assert result.peak_memory > 0


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_parallel_executors_match_polars(executor: str, tx_files: Path) -> None:
    spec = Aggregate(by="account_id", usd=("usd", "sum"), n=("usd", "len"), sd=("usd", "std"))
    handler = LargeDataHandler(
        chunk_size=9_000,
        max_workers=2,
        executor=executor,
        executor_options={"processes": False} if executor == "dask" else None,
        progress=False,
    )
    result = handler.process(str(tx_files / "*.parquet"), transform=[convert, spec], mode="parallel")
    expected = spec.over(convert(pl.scan_parquet(tx_files / "*.parquet"))).collect()
    assert result.output is not None
    assert result.executor == executor
    assert_frame_equal(result.output, expected, check_exact=False)


def test_parallel_keeps_at_most_n_chunks_in_flight(tx_files: Path) -> None:
    import threading

    live = [0, 0]
    lock = threading.Lock()

    def tracked(frame: pl.DataFrame) -> pl.DataFrame:
        with lock:
            live[0] += 1
            live[1] = max(live[1], live[0])
        try:
            return frame.head(1)
        finally:
            with lock:
                live[0] -= 1

    handler = LargeDataHandler(chunk_size=7_000, max_workers=2, max_in_flight=2, progress=False)
    result = handler.process(str(tx_files / "*.parquet"), transform=tracked, mode="parallel")
    assert result.chunks == 9
    assert 1 <= live[1] <= 2


def _strict_cast_fails_at(transaction_id: int) -> pl.Expr:
    """A step that fails only on the chunk holding ``transaction_id`` (a strict cast)."""
    bad = pl.when(pl.col("transaction_id") == transaction_id).then(pl.lit("x")).otherwise(pl.lit("1"))
    return bad.cast(pl.Int64, strict=True).alias("one")


def test_processes_fused_tasks_fall_back_to_chunks_and_errors_stay_typed(tx_files: Path) -> None:
    spec = Aggregate(by="account_id", n=("one", "sum"), total=("amount", "sum"))  # uses "one"
    transform = [[_strict_cast_fails_at(30_123)], spec]
    source = str(tx_files / "*.parquet")
    options = {"chunk_size": 9_000, "max_workers": 2, "progress": False}
    with LargeDataHandler(executor="processes", **options) as handler:  # type: ignore[arg-type]
        skipped = handler.process(source, transform=transform, mode="parallel", on_error="skip")
        with pytest.raises(DataQualityError, match="strict"):
            handler.process(source, transform=transform, mode="parallel")
    threads = LargeDataHandler(**options).process(  # type: ignore[arg-type]
        source, transform=transform, mode="parallel", on_error="skip"
    )
    assert skipped.output is not None
    assert threads.output is not None
    assert skipped.skipped_chunks == 1 == len(skipped.errors)
    lost = skipped.errors[0].rows
    assert 0 < lost <= 9_000
    assert skipped.output["n"].sum() == 60_000 - lost
    assert_frame_equal(skipped.output.sort("account_id"), threads.output.sort("account_id"))


def test_an_eager_transform_gets_chunks_in_every_mode(tx_files: Path) -> None:
    heights: list[int] = []

    def eager(frame: pl.DataFrame) -> pl.DataFrame:
        heights.append(frame.height)
        return frame.select("account_id", "amount")

    spec = Aggregate(by="account_id", total=("amount", "sum"))
    for mode in MODES:
        heights.clear()
        result = LargeDataHandler(chunk_size=9_000, progress=False).process(
            str(tx_files / "*.parquet"), transform=[eager, spec], mode=mode
        )
        assert result.output is not None
        assert sum(heights) == 60_000, mode
        assert max(heights) <= 9_000, mode


class _CountingRemote(ThreadExecutor):
    """Threads posing as a remote executor, counting the tasks submitted."""

    name = "counting"
    remote = True

    def __init__(self, max_workers: int = 2) -> None:
        super().__init__(max_workers)
        self.tasks = 0

    def submit(self, fn: Any, /, *args: Any) -> Any:
        self.tasks += 1
        return super().submit(fn, *args)


@pytest.mark.parametrize(("on_error", "tasks"), [("raise", 3), ("skip", 4)])
def test_remote_aggregations_run_as_a_few_bounded_tasks(tmp_path: Path, on_error: str, tasks: int) -> None:
    """40 parts on 2 workers: fused tasks start at one per worker, unfused ones at one
    per slot in flight (4), and no task takes more than 16 parts (so 3 fused tasks)."""
    generate_transactions(40_000).write_parquet(tmp_path / "tx.parquet", row_group_size=1_000)
    spec = Aggregate(by="account_id", usd=("usd", "sum"), n=("usd", "len"))
    executor = _CountingRemote(max_workers=2)
    with LargeDataHandler(chunk_size=1_000, executor=executor, progress=False) as handler:
        result = handler.process(
            str(tmp_path / "tx.parquet"), transform=[convert, spec], mode="parallel", on_error=on_error
        )
    executor.close()
    assert executor.tasks == tasks
    assert result.chunks == 40
    assert result.output is not None
    expected = spec.over(convert(pl.scan_parquet(tmp_path / "tx.parquet"))).collect()
    assert_frame_equal(result.output, expected, check_exact=False)


def test_dask_on_an_existing_scheduler_address(tx_files: Path) -> None:
    import distributed

    spec = Aggregate(by="account_id", usd=("usd", "sum"), n=("usd", "len"))
    with distributed.LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        handler = LargeDataHandler(
            chunk_size=9_000, executor="dask", executor_options={"address": address}, progress=False
        )
        with handler:
            result = handler.process(str(tx_files / "*.parquet"), transform=[convert, spec], mode="parallel")
        assert cluster.status.name == "running"  # the executor disconnected; the cluster is not its to stop
    expected = spec.over(convert(pl.scan_parquet(tx_files / "*.parquet"))).collect()
    assert result.output is not None
    assert_frame_equal(result.output, expected, check_exact=False)


def test_dask_unreachable_scheduler_is_a_typed_error() -> None:
    from sygnify.errors import ConnectionFailedError
    from sygnify.processing.executors.dask import DaskExecutor

    with pytest.raises(ConnectionFailedError, match=r"Dask scheduler tcp://127\.0\.0\.1:9"):
        DaskExecutor(address="tcp://127.0.0.1:9", timeout="1s")
