"""Sequential aggregations over Parquet run consecutive chunks as one query, at a measured pace.

This is the chunk loop of an aggregation the whole-run query (:mod:`sygnify.processing.query`)
did not finish, a query that failed on some data: consecutive chunks are fused again, and only
the failing region is redone chunk by chunk. The tests switch the whole-run query off
(``whole_run_off``) to drive the pacing on clean data.
"""

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
from sygnify.processing import Aggregate, LargeDataHandler, query
from sygnify.processing.modes import fused
from tests.processing.conftest import convert
from tests.processing.test_modes import AGG, frames, reference

SPEC = Aggregate(by="account_id", usd=("usd", "sum"), n=("usd", "len"), sd=("usd", "std"))
SEQUENTIAL = [("chunked", "threads"), ("parallel", "threads")]


@pytest.fixture(scope="module")
def forty_parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fused") / "tx.parquet"
    generate_transactions(40_000).write_parquet(path, row_group_size=1_000)
    return path


@pytest.fixture
def whole_run_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query, "eligible", lambda job: False)


def _count_queries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the rows of every partial aggregation query."""
    heights: list[int] = []
    original = Aggregate.partial

    def counted(self: Aggregate, frame: Any) -> Any:
        heights.append(
            frame.select(pl.len()).collect().item() if isinstance(frame, pl.LazyFrame) else frame.height
        )
        return original(self, frame)

    monkeypatch.setattr(Aggregate, "partial", counted)
    return heights


@pytest.mark.usefixtures("whole_run_off")
@pytest.mark.parametrize(("mode", "executor"), SEQUENTIAL)
@pytest.mark.parametrize(("seconds", "queries"), [(60.0, 2), (1e-9, 40)])
def test_chunks_fuse_into_queries_at_the_measured_pace(
    monkeypatch: pytest.MonkeyPatch, forty_parts: Path, mode: str, executor: str, seconds: float, queries: int
) -> None:
    """The first chunk runs alone and measures the pace; then as many chunks as fit in
    ``QUERY_SECONDS`` run as one query (all 39 left, or one at a time)."""
    monkeypatch.setattr(fused, "QUERY_SECONDS", seconds)
    heights = _count_queries(monkeypatch)
    progress: list[int] = []
    handler = LargeDataHandler(
        chunk_size=1_000, executor=executor, progress=False, on_progress=lambda p: progress.append(p.rows_in)
    )
    result = handler.process(str(forty_parts), transform=[convert, SPEC], mode=mode)
    assert len(heights) == queries
    assert result.chunks == 40  # chunk counts and progress are per chunk, fused or not
    assert progress[-1] == 40_000
    assert result.output is not None
    assert_frame_equal(
        result.output, SPEC.over(convert(pl.scan_parquet(forty_parts))).collect(), check_exact=False
    )


@pytest.mark.parametrize(("mode", "executor"), SEQUENTIAL)
def test_a_failing_fused_query_is_redone_per_chunk_and_names_the_chunk(
    forty_parts: Path, mode: str, executor: str
) -> None:
    bad = pl.when(pl.col("transaction_id") == 30_123).then(pl.lit("x")).otherwise(pl.lit("1"))
    spec = Aggregate(by="account_id", n=("one", "sum"))
    transform = [[bad.cast(pl.Int64, strict=True).alias("one")], spec]
    handler = LargeDataHandler(chunk_size=1_000, executor=executor, progress=False)
    with pytest.raises(DataQualityError, match=r"(?s)chunk 000030-0000 .*strict_cast"):
        handler.process(str(forty_parts), transform=transform, mode=mode)


@pytest.mark.parametrize(("mode", "executor"), SEQUENTIAL)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frame=frames,
    row_group=st.integers(1, 90),
    chunk=st.integers(1, 200),
    seconds=st.sampled_from([0.0, 60.0]),
)
def test_paced_aggregation_over_parquet_matches_polars(
    tmp_path: Path, mode: str, executor: str, frame: pl.DataFrame, row_group: int, chunk: int, seconds: float
) -> None:
    path = tmp_path / f"{mode}.parquet"
    frame.write_parquet(path, row_group_size=row_group)
    original = fused.QUERY_SECONDS
    fused.QUERY_SECONDS = seconds  # hypothesis reruns the body: no monkeypatch fixture here
    try:
        result = LargeDataHandler(chunk_size=chunk, executor=executor, progress=False).process(
            str(path), transform=AGG, mode=mode
        )
    finally:
        fused.QUERY_SECONDS = original
    assert result.rows_in == frame.height
    assert result.output is not None
    assert_frame_equal(result.output, reference(frame), check_exact=False, check_dtypes=False)


@pytest.mark.parametrize(("mode", "executor"), [*SEQUENTIAL, ("parallel", "processes")])
def test_row_groups_larger_than_a_chunk_count_as_chunks_fused_or_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str, executor: str
) -> None:
    """A part holds whole row groups (here 5,000 rows for 1,000-row chunks): fused queries
    report the same chunks as the unfused path, and pacing counts rows, not parts."""
    path = tmp_path / "big-groups.parquet"
    generate_transactions(40_000).write_parquet(path, row_group_size=5_000)
    monkeypatch.setattr(fused, "QUERY_SECONDS", 60.0)
    with LargeDataHandler(chunk_size=1_000, executor=executor, max_workers=2, progress=False) as handler:
        fused_run = handler.process(str(path), transform=[convert, SPEC], mode=mode)
        unfused_run = handler.process(str(path), transform=[convert, SPEC], mode=mode, on_error="skip")
    assert fused_run.chunks == unfused_run.chunks == 40
    assert fused_run.rows_in == unfused_run.rows_in == 40_000
    assert fused_run.output is not None
    assert unfused_run.output is not None
    assert_frame_equal(fused_run.output, unfused_run.output, check_exact=False)


@pytest.mark.usefixtures("whole_run_off")
def test_pacing_counts_rows_not_parts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """On a clock where every row takes 1 µs and queries last 0.02 s: the first part
    alone, then 20,000 rows per query, whatever the parts' sizes (5,000-row row groups
    for 1,000-row chunks here)."""
    path = tmp_path / "big-groups.parquet"
    generate_transactions(40_000).write_parquet(path, row_group_size=5_000)
    clock = [0.0]
    groups: list[list[int]] = []
    real = fused.fused_partial

    def timed(processor: Any, parts: list[Any], rows: int) -> Any:
        groups.append([part.rows for part in parts])
        clock[0] += 1e-6 * sum(part.rows for part in parts)
        return real(processor, parts, rows)

    monkeypatch.setattr(fused, "fused_partial", timed)
    monkeypatch.setattr(fused, "clock", lambda: clock[0])
    monkeypatch.setattr(fused, "QUERY_SECONDS", 0.02)
    result = LargeDataHandler(chunk_size=1_000, progress=False).process(
        str(path), transform=[convert, SPEC], mode="chunked"
    )
    assert groups == [[5_000], [5_000] * 4, [5_000] * 3]
    assert result.chunks == 40
