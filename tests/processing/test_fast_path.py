"""Every mode and option as one Polars streaming query (``sygnify.processing.query``).

- Each mode x {no options, a memory budget, ``skip``, ``dead_letter``, ``schema=``} on a
  row-wise job and an aggregation runs as one query (``result.one_query``) and equals
  Polars on the same data (and, property-based, on generated data).
- Bad rows are found inside the query: CSV values that do not parse and a file whose
  column drifted to text are dead letters holding exactly the bad rows with their reason
  and file; ``skip`` counts them; ``raise`` fails with a ``SchemaError`` and leaves no
  output file, not even a temporary one.
- Progress moves while the query runs; a query that fails on some data is redone chunk by
  chunk, which names the chunk.
- A 256 MB budget holds (peak RSS growth, in a fresh process) on data more than 10x the
  budget, in every mode, still as one query.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from sygnify.errors import DataQualityError, SchemaError
from sygnify.processing import Aggregate, LargeDataHandler, query
from tests.processing.conftest import convert

MODES = ["streaming", "chunked", "parallel", "incremental"]
OPTIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "max_memory": {"max_memory": "2GB"},
    "skip": {"on_error": "skip"},
    "dead_letter": {"on_error": "dead_letter"},
    "schema": {"schema": "file"},
}
SPEC = Aggregate(by="currency", usd=("usd", "sum"), n=("usd", "len"))


def _run(
    mode: str,
    option: str,
    src: str,
    tmp_path: Path,
    transform: Any,
    sink: str | None,
    chunk_size: int = 7_000,
    budget: str | None = None,
) -> Any:
    handler_options = {k: v for k, v in OPTIONS[option].items() if k == "max_memory"}
    if budget is not None:
        handler_options["max_memory"] = budget
    options: dict[str, Any] = {k: v for k, v in OPTIONS[option].items() if k != "max_memory"}
    if options.get("schema") == "file":
        options["schema"] = dict(pl.scan_parquet(src).collect_schema())
    if options.get("on_error") == "dead_letter":
        options["dead_letter"] = tmp_path / "dead"
    if mode == "incremental":
        options["checkpoint"] = str(tmp_path / "state.json")
        sink = sink or str(tmp_path / "agg.parquet")
    handler = LargeDataHandler(progress=False, chunk_size=chunk_size, max_workers=2, **handler_options)
    return handler.process(src, transform=transform, mode=mode, sink=sink, **options)


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("mode", MODES)
def test_row_wise_jobs_run_as_one_query_and_equal_polars(
    tx_files: Path, tmp_path: Path, mode: str, option: str
) -> None:
    src = str(tx_files / "*.parquet")
    sink = str(tmp_path / "out") + "/" if mode == "incremental" else str(tmp_path / "out.parquet")
    result = _run(mode, option, src, tmp_path, convert, sink)
    assert result.one_query, (mode, option)
    expected = convert(pl.scan_parquet(src)).collect()
    got = pl.read_parquet(sink if sink.endswith(".parquet") else sink + "*.parquet")
    assert_frame_equal(got, expected, check_row_order=False)
    assert (result.rows_in, result.rows_out, result.dead_letters) == (60_000, expected.height, 0)
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("mode", MODES)
def test_aggregations_run_as_one_query_and_equal_polars(
    tx_files: Path, tmp_path: Path, mode: str, option: str
) -> None:
    src = str(tx_files / "*.parquet")
    result = _run(mode, option, src, tmp_path, [convert, SPEC], None)
    expected = SPEC.over(convert(pl.scan_parquet(src))).collect()
    assert result.output is not None
    assert_frame_equal(result.output, expected, check_row_order=False, check_exact=False)
    assert result.rows_in == 60_000
    assert result.one_query, (mode, option)  # incremental: one query per new file


#: The generated frames' columns, with no rows.
NO_ROWS = pl.DataFrame(schema={"k": pl.Int64, "v": pl.Int64, "s": pl.String})
values = st.one_of(st.none(), st.integers(-(10**6), 10**6))
frames = st.lists(st.tuples(st.integers(0, 4), values, st.sampled_from(["a", "b", None])), max_size=300).map(
    lambda rows: pl.DataFrame(rows, schema=NO_ROWS.schema, orient="row")
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frame=frames,
    files=st.integers(1, 3),
    mode=st.sampled_from(["streaming", "chunked", "parallel"]),
    option=st.sampled_from(["none", "max_memory", "skip", "schema"]),
    aggregate=st.booleans(),
    chunk_size=st.integers(1, 400),
    budget=st.sampled_from([None, "4GB", "300MB", "100MB"]),  # 100MB: below the engine, chunk loop
)
@example(  # no rows, on the chunk loop: still the shape the query gives (was None)
    frame=NO_ROWS,
    files=1,
    mode="streaming",
    option="none",
    aggregate=False,
    chunk_size=1,
    budget="100MB",
)
@example(
    frame=NO_ROWS,
    files=1,
    mode="chunked",
    option="schema",
    aggregate=True,
    chunk_size=1,
    budget="100MB",
)
def test_generated_data_equals_polars_in_every_mode_and_option(
    tmp_path_factory: pytest.TempPathFactory,
    frame: pl.DataFrame,
    files: int,
    mode: str,
    option: str,
    aggregate: bool,
    chunk_size: int,
    budget: str | None,
) -> None:
    root = tmp_path_factory.mktemp("gen")
    size = max(1, -(-frame.height // files))
    for i in range(files):
        frame.slice(i * size, size).write_parquet(root / f"{i}.parquet", row_group_size=50)

    def step(lf: pl.LazyFrame) -> pl.LazyFrame:
        return lf.filter(pl.col("v").is_null() | (pl.col("v") > 0)).with_columns(w=pl.col("v") * 2)

    spec = Aggregate(by="k", total=("w", "sum"), n=("w", "len"))
    transform = [step, spec] if aggregate else step
    result = _run(mode, option, str(root / "*.parquet"), root, transform, None, chunk_size, budget)
    expected = spec.over(step(frame.lazy())).collect() if aggregate else step(frame.lazy()).collect()
    assert result.output is not None
    if aggregate:
        assert_frame_equal(result.output, expected, check_row_order=False)
    else:
        assert_frame_equal(result.output, expected)  # collected in source order
    assert result.one_query == (budget != "100MB")


@pytest.mark.parametrize("aggregate", [False, True])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("mode", MODES)
def test_a_dataframe_step_runs_in_the_query_on_pieces_of_at_most_chunk_size_rows(
    tx_files: Path, tmp_path: Path, mode: str, option: str, aggregate: bool
) -> None:
    src = str(tx_files / "*.parquet")
    sizes: list[int] = []

    def eager(df: pl.DataFrame) -> pl.DataFrame:  # annotated: it is given DataFrames
        sizes.append(df.height)
        return convert(df.lazy()).collect()

    transform = [eager, SPEC] if aggregate else eager
    sink = str(tmp_path / "out") + "/" if mode == "incremental" and not aggregate else None
    result = _run(mode, option, src, tmp_path, transform, sink, chunk_size=5_000)
    assert result.one_query, (mode, option)
    expected = convert(pl.scan_parquet(src)).collect()
    if aggregate:
        expected = SPEC.over(expected.lazy()).collect()
        got = result.output
    elif sink is not None:
        got = pl.read_parquet(sink + "*.parquet")
    else:
        got = result.output
    assert got is not None
    assert_frame_equal(got, expected, check_row_order=False, check_exact=not aggregate)
    assert max(sizes) <= 5_000, "a DataFrame step is never given more than chunk_size rows"


def test_a_dataframe_step_that_cannot_take_an_empty_frame_runs_chunk_by_chunk(
    tx_files: Path, tmp_path: Path
) -> None:
    def first_row_matters(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(first=pl.lit(df["amount"][0]))  # IndexError on no rows

    result = LargeDataHandler(progress=False, chunk_size=20_000).process(
        str(tx_files / "*.parquet"), transform=first_row_matters, mode="chunked"
    )
    assert not result.one_query
    assert result.output is not None
    assert result.output.height == 60_000


def test_a_dataframe_step_below_the_least_morsel_runs_chunk_by_chunk(tx_files: Path) -> None:
    seen: list[int] = []

    def eager(df: pl.DataFrame) -> pl.DataFrame:
        seen.append(df.height)
        return df

    result = LargeDataHandler(progress=False, chunk_size=500).process(
        str(tx_files / "tx-0.parquet"), transform=eager, mode="chunked"
    )
    assert not result.one_query
    assert max(seen) <= 500
    assert result.output is not None
    assert result.output.height == sum(seen)


def _bad_csv(path: Path, rows: int = 5_000) -> tuple[pl.DataFrame, list[int]]:
    """A CSV of ``rows`` transactions whose every 1000th amount is ``n/a``; the clean rows
    and the indices of the bad ones."""
    rng = np.random.default_rng(3)
    frame = pl.DataFrame(
        {
            "account_id": rng.integers(0, 50, rows),
            "amount": rng.uniform(0, 100, rows).round(2),
            "currency": rng.choice(["USD", "EUR", "GBP"], rows),
        }
    )
    bad = list(range(7, rows, 1000))
    text = frame.with_columns(amount=pl.col("amount").cast(pl.String)).with_columns(
        amount=pl.when(pl.int_range(pl.len()).is_in(bad)).then(pl.lit("n/a")).otherwise(pl.col("amount"))
    )
    text.write_csv(path)
    clean = frame.with_row_index("i").filter(~pl.col("i").is_in(bad)).drop("i")
    return clean, bad


CSV_SCHEMA = {"account_id": pl.Int64, "amount": pl.Float64, "currency": pl.String}


def _transform(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.filter(pl.col("amount") > 10).with_columns(cents=(pl.col("amount") * 100).cast(pl.Int64))


@pytest.mark.parametrize("mode", ["streaming", "chunked", "parallel"])
def test_bad_csv_values_become_exact_dead_letters_in_one_query(tmp_path: Path, mode: str) -> None:
    src = tmp_path / "tx.csv"
    clean, bad = _bad_csv(src)
    out = tmp_path / "out.parquet"
    result = LargeDataHandler(progress=False).process(
        str(src),
        transform=_transform,
        mode=mode,
        sink=str(out),
        schema=CSV_SCHEMA,
        on_error="dead_letter",
        dead_letter=tmp_path / "dead",
    )
    assert result.one_query
    assert_frame_equal(pl.read_parquet(out), _transform(clean.lazy()).collect())
    dead = pl.read_parquet(tmp_path / "dead" / "*.parquet")
    assert dead.height == len(bad) == result.dead_letters
    assert set(dead["amount"]) == {"n/a"}
    assert set(dead["_error"]) == {"amount: not a valid Float64"}
    assert set(dead["_origin"]) == {str(src)}
    assert [(e.error_type, e.rows, e.action) for e in result.errors] == [
        ("SchemaError", len(bad), "dead_letter")
    ]


def test_bad_csv_values_are_counted_under_skip_and_fail_under_raise(tmp_path: Path) -> None:
    src = tmp_path / "tx.csv"
    clean, bad = _bad_csv(src)
    out = tmp_path / "out.parquet"
    handler = LargeDataHandler(progress=False)
    skipped = handler.process(
        str(src), transform=_transform, sink=str(out), schema=CSV_SCHEMA, on_error="skip"
    )
    assert skipped.one_query
    assert [(e.rows, e.action) for e in skipped.errors] == [(len(bad), "skipped")]
    assert pl.read_parquet(out).height == _transform(clean.lazy()).collect().height
    out.unlink()
    with pytest.raises(SchemaError, match=rf"{len(bad)} bad row\(s\), first: amount: not a valid Float64"):
        handler.process(str(src), transform=_transform, sink=str(out), schema=CSV_SCHEMA, mode="streaming")
    assert list(tmp_path.iterdir()) == [src], "raise must leave no output, not even a temporary file"


def test_a_file_whose_column_drifted_to_text_dead_letters_only_its_bad_rows(tmp_path: Path) -> None:
    good = pl.DataFrame({"id": range(100), "amount": [float(i) for i in range(100)]})
    good.write_parquet(tmp_path / "1.parquet")
    drifted = pl.DataFrame(
        {"id": range(100, 150), "amount": [str(i) if i % 10 else "oops" for i in range(50)]}
    )
    drifted.write_parquet(tmp_path / "2.parquet")
    result = LargeDataHandler(progress=False).process(
        str(tmp_path / "*.parquet"),
        schema={"id": pl.Int64, "amount": pl.Float64},
        on_error="dead_letter",
        dead_letter=tmp_path / "dead",
    )
    assert result.one_query
    assert result.output is not None
    assert result.output.height == 145
    assert result.output["amount"].dtype == pl.Float64
    dead = pl.read_parquet(tmp_path / "dead" / "*.parquet")
    assert sorted(dead["id"].cast(pl.Int64)) == [100, 110, 120, 130, 140]
    assert set(dead["_origin"]) == {str(tmp_path / "2.parquet")}
    assert set(dead["_error"]) == {"amount: not a valid Float64"}


def test_progress_moves_while_the_query_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(query, "PROGRESS_S", 0.002)
    src = tmp_path / "big.parquet"
    rows = 3_000_000
    pl.DataFrame({"x": np.arange(rows), "y": np.arange(rows) % 7}).write_parquet(src, row_group_size=100_000)
    seen: list[int] = []

    def slow(lf: pl.LazyFrame) -> pl.LazyFrame:
        return lf.with_columns(z=pl.col("x").cast(pl.String).str.len_chars()).filter(pl.col("z") > 0)

    result = LargeDataHandler(progress=False, on_progress=lambda p: seen.append(p.rows_in)).process(
        str(src), transform=slow, sink=str(tmp_path / "out.parquet")
    )
    assert result.one_query
    assert len(seen) >= 2, seen
    assert seen == sorted(seen)
    assert 0 < seen[0] < rows
    assert seen[-1] == rows


@pytest.mark.parametrize("mode", ["streaming", "chunked", "parallel"])
@pytest.mark.parametrize("sink", ["dataset", "collected"])
def test_only_the_file_a_query_fails_on_is_redone_by_chunks(tmp_path: Path, mode: str, sink: str) -> None:
    for i in range(3):  # 3 files of 1,000 rows; the second fails a strict cast at its row 612
        values = [str(i * 1_000 + j) for j in range(1_000)]
        if i == 1:
            values[612] = "boom"
        pl.DataFrame({"x": values}).write_parquet(tmp_path / f"in-{i}.parquet", row_group_size=100)
    calls: list[int] = []

    def strict(lf: pl.LazyFrame) -> pl.LazyFrame:
        calls.append(1)  # once per query built, once per chunk on the loop
        return lf.with_columns(n=pl.col("x").cast(pl.Int64, strict=True))

    out = str(tmp_path / "out") + "/" if sink == "dataset" else None
    handler = LargeDataHandler(progress=False, chunk_size=100, max_workers=2)
    with pytest.raises(DataQualityError, match="chunk 00000016"):  # 10 chunks of file 0, then 6
        handler.process(str(tmp_path / "in-*.parquet"), transform=strict, mode=mode, sink=out)
    calls.clear()
    result = handler.process(
        str(tmp_path / "in-*.parquet"), transform=strict, mode=mode, sink=out, on_error="skip"
    )
    assert [(e.chunk, e.action) for e in result.errors] == [(16, "skipped")]
    assert not result.one_query
    # the whole query, then one per file, and only file 1's 10 chunks (30 on the old rerun)
    assert len(calls) <= 1 + 3 + 10 + 3, len(calls)
    got = pl.read_parquet(out + "*.parquet") if out else result.output
    assert got is not None
    expected = [n for n in range(3_000) if not 1_600 <= n < 1_700]
    assert sorted(got["n"].to_list()) == expected
    if out is None:
        assert got["n"].to_list() == expected, "collected in source order"
    assert (result.rows_in, result.rows_out) == (3_000, 2_900)


def test_a_query_failing_on_some_rows_is_redone_by_chunks_that_name_it(tmp_path: Path) -> None:
    pl.DataFrame({"x": [str(i) for i in range(1_000)]}).with_columns(
        x=pl.when(pl.int_range(pl.len()) == 612).then(pl.lit("boom")).otherwise(pl.col("x"))
    ).write_parquet(tmp_path / "in.parquet", row_group_size=100)

    def strict(lf: pl.LazyFrame) -> pl.LazyFrame:
        return lf.with_columns(n=pl.col("x").cast(pl.Int64, strict=True))

    out = tmp_path / "out"
    handler = LargeDataHandler(progress=False, chunk_size=100)
    with pytest.raises(DataQualityError, match="chunk 00000006"):
        handler.process(str(tmp_path / "in.parquet"), transform=strict, sink=str(out) + "/")
    result = handler.process(
        str(tmp_path / "in.parquet"), transform=strict, sink=str(out) + "/", on_error="skip"
    )
    assert not result.one_query
    assert [(e.chunk, e.action) for e in result.errors] == [(6, "skipped")]
    assert pl.read_parquet(out / "*.parquet").height == 900
    assert not list(tmp_path.rglob("*.tmp"))


BUDGET = 256 * 10**6

JOB = textwrap.dedent(
    """
    import json, os, sys, threading, time
    import polars as pl
    from sygnify.processing import LargeDataHandler
    src, out, mode, budget = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    def transform(lf):
        return lf.filter(pl.col("amount") > 5).with_columns(usd=pl.col("amount") * 1.1)
    def rss():
        # resident minus file-backed pages, as PeakMemory counts: the input files the engine
        # maps are page cache (on a loaded machine it kept all 107 MB of them mapped at once)
        fields = open("/proc/self/statm").read().split()
        return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE")
    handler = LargeDataHandler(max_memory=budget, progress=False)
    options = {"checkpoint": out + "state.json"} if mode == "incremental" else {}
    start, peak, stop = rss(), [0], threading.Event()
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss() - start)
            time.sleep(0.005)
    thread = threading.Thread(target=sample)
    thread.start()
    result = handler.process(src, transform=transform, mode=mode, sink=out + "data/", **options)
    stop.set()
    thread.join()
    print(json.dumps({"sampled": peak[0], "rows": result.rows_in, "one_query": result.one_query}))
    """
)


@pytest.fixture(scope="module")
def wide_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Over 10x the budget as Arrow: 12M rows with a 200-byte text column (small on disk:
    Parquet's dictionary encoding)."""
    root = tmp_path_factory.mktemp("wide")
    notes = [f"{i:04d}" + "x" * 196 for i in range(64)]
    rng = np.random.default_rng(5)
    for i in range(6):
        rows = 2_000_000
        pl.DataFrame(
            {
                "id": np.arange(i * rows, (i + 1) * rows),
                "amount": rng.uniform(0, 100, rows),
                "note": pl.Series(notes)[rng.integers(0, 64, rows)],
            }
        ).write_parquet(root / f"part-{i}.parquet", row_group_size=100_000)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_a_256mb_budget_holds_as_one_query_on_data_ten_times_larger(
    wide_dataset: Path, tmp_path: Path, mode: str
) -> None:
    files = sorted(wide_dataset.glob("*.parquet"))
    in_memory = pq.read_table(files[0]).nbytes * len(files)  # Arrow bytes of the whole dataset
    assert in_memory >= 10 * BUDGET, in_memory
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", JOB, str(wide_dataset / "*.parquet"), str(tmp_path) + "/", mode, str(BUDGET)],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rows"] == 12_000_000
    assert report["one_query"], report
    assert report["sampled"] <= BUDGET, report
