"""Incremental mode: only new data; a SIGKILL at any point then a rerun equals a clean run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from sygnify.errors import ConfigurationError, SygnifyError
from sygnify.io.files import is_temporary
from sygnify.processing import Aggregate, Checkpoint, LargeDataHandler, ParquetSink, query


def _frame(start: int, rows: int) -> pl.DataFrame:
    ids = list(range(start, start + rows))
    return pl.DataFrame({"id": ids, "k": [i % 7 for i in ids], "v": [float(i % 13) for i in ids]})


def test_cursor_mode_processes_only_new_rows(tmp_path: Path) -> None:
    src, out, state = tmp_path / "src", tmp_path / "out", tmp_path / "state.json"
    src.mkdir()
    _frame(0, 500).write_parquet(src / "a.parquet")
    handler = LargeDataHandler(chunk_size=120, progress=False)
    first = handler.process(str(src), mode="incremental", sink=str(out) + "/", checkpoint=state, cursor="id")
    again = handler.process(str(src), mode="incremental", sink=str(out) + "/", checkpoint=state, cursor="id")
    _frame(500, 300).write_parquet(src / "b.parquet")
    third = handler.process(str(src), mode="incremental", sink=str(out) + "/", checkpoint=state, cursor="id")
    assert (first.rows_in, again.rows_in, third.rows_in) == (500, 0, 300)
    assert_frame_equal(pl.read_parquet(out).sort("id"), _frame(0, 800))


def test_new_file_mode_with_incremental_aggregate(tmp_path: Path) -> None:
    src, state, out = tmp_path / "src", tmp_path / "state.json", tmp_path / "agg.parquet"
    src.mkdir()
    spec = Aggregate(by="k", total=("v", "sum"), sd=("v", "std"), n=("v", "len"))
    handler = LargeDataHandler(chunk_size=100, progress=False)
    _frame(0, 250).write_parquet(src / "1.parquet")
    handler.process(str(src), transform=spec, mode="incremental", sink=str(out), checkpoint=state)
    _frame(250, 250).write_parquet(src / "2.parquet")
    result = handler.process(str(src), transform=spec, mode="incremental", sink=str(out), checkpoint=state)
    expected = spec.over(_frame(0, 500).lazy()).collect()
    assert result.rows_in == 250
    assert_frame_equal(pl.read_parquet(out), expected, check_exact=False)


@pytest.mark.parametrize(
    ("interval", "whole"),
    [(0.0, False), (60.0, False), (0.0, True)],
)  # the chunk path: a query per chunk / the chunks of an interval as one query; one query per file
def test_incremental_aggregate_per_chunk_or_fused_gives_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interval: float, whole: bool
) -> None:
    if not whole:  # the chunk path, which a file the engine cannot run whole takes
        monkeypatch.setattr(query, "eligible", lambda job: False)
    src = tmp_path / "src"
    src.mkdir()
    spec = Aggregate(by="k", total=("v", "sum"), sd=("v", "std"), n=("v", "len"))
    handler = LargeDataHandler(chunk_size=40, progress=False)
    state = Checkpoint(tmp_path / "state.json", interval=interval)
    for i in range(3):
        _frame(i * 500, 500).write_parquet(src / f"{i}.parquet", row_group_size=64)
        result = handler.process(
            str(src), transform=spec, mode="incremental", sink=str(tmp_path / "agg.parquet"), checkpoint=state
        )
        assert result.rows_in == 500
        expected = spec.over(_frame(0, 500 * (i + 1)).lazy()).collect()
        assert result.output is not None
        assert_frame_equal(result.output, expected, check_exact=False)
        assert_frame_equal(pl.read_parquet(tmp_path / "agg.parquet"), expected, check_exact=False)
    committed = state.load()
    assert committed is not None
    # 13 chunks of 40 rows per file, whatever the queries; a file's query is one chunk
    assert committed["seq"] == (3 if whole else 3 * 13)
    sides = sorted(
        p.name for p in tmp_path.iterdir() if p.name.startswith("state.json.") and p.suffix == ".arrow"
    )
    # One file per partial frame of the current state; replaced states are deleted.
    assert sides == sorted(
        f"state.json.{committed['partial']}.{key}.arrow" for key in committed["partial_keys"]
    )


def test_incremental_refuses_a_sink_that_could_duplicate(tmp_path: Path) -> None:
    _frame(0, 10).write_parquet(tmp_path / "a.parquet")
    with pytest.raises(ConfigurationError, match="idempotent"):
        LargeDataHandler(progress=False).process(
            str(tmp_path / "a.parquet"),
            mode="incremental",
            sink=str(tmp_path / "o.arrow"),
            checkpoint=tmp_path / "s.json",
        )


JOB = textwrap.dedent(
    """
    import sys
    from sygnify.processing import Aggregate, Checkpoint, LargeDataHandler
    src, out, state, agg, state2, cursor, interval = sys.argv[1:]
    handler = LargeDataHandler(chunk_size=40, progress=False)
    handler.process(src, mode="incremental", sink=out + "/",
                    checkpoint=Checkpoint(state, interval=float(interval)), cursor=cursor or None)
    spec = Aggregate(by="k", total=("v", "sum"), sd=("v", "std"), n=("v", "len"))
    handler.process(src, transform=spec, mode="incremental", sink=agg,
                    checkpoint=Checkpoint(state2, interval=float(interval)), cursor=cursor or None)
    """
)


def _run(args: list[str], kill_after: float | None) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", JOB, *args], env=env)
    if kill_after is None:
        assert proc.wait(timeout=240) == 0
        return
    time.sleep(kill_after)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("cursor", ["id", ""])
@pytest.mark.parametrize("interval", [0.0, 0.02])  # commit after every chunk / every few chunks
def test_sigkill_at_random_points_then_rerun_equals_clean_run(
    tmp_path: Path, cursor: str, interval: float
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        _frame(i * 400, 400).write_parquet(src / f"{i:02d}.parquet")

    def paths(name: str) -> list[str]:
        base = tmp_path / name
        return [
            str(src),
            str(base / "out"),
            str(base / "state.json"),
            str(base / "agg.parquet"),
            str(base / "agg.json"),
            cursor,
            str(interval),
        ]

    started = time.perf_counter()
    _run(paths("clean"), None)
    clean_seconds = time.perf_counter() - started
    rng = random.Random(1234)
    for _attempt in range(6):  # kill repeatedly at random points, then finish
        _run(paths("crashy"), rng.uniform(0.3, clean_seconds))
    _run(paths("crashy"), None)
    clean_out = pl.read_parquet(tmp_path / "clean" / "out").sort("id")
    crashy_out = pl.read_parquet(tmp_path / "crashy" / "out").sort("id")
    assert_frame_equal(crashy_out, clean_out)
    assert_frame_equal(clean_out, _frame(0, 2400))
    assert_frame_equal(
        pl.read_parquet(tmp_path / "crashy" / "agg.parquet"),
        pl.read_parquet(tmp_path / "clean" / "agg.parquet"),
    )
    # The last run removed the temporaries of the killed ones.
    leftovers = [p.name for p in (tmp_path / "crashy").rglob("*") if is_temporary(p.name)]
    assert leftovers == []


class _CountingSink(ParquetSink):
    """Counts result writes; the first ``failures`` of them fail as a crash would."""

    def __init__(self, path: Path, failures: int = 0) -> None:
        super().__init__(path)
        self.writes = 0
        self.failures = failures

    def replace(self, table: pa.Table) -> list[str]:
        self.writes += 1
        if self.writes <= self.failures:
            raise OSError("the process died before the result was written")
        return super().replace(table)


def test_incremental_aggregate_writes_its_result_once_per_run_and_after_a_crash(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "agg.parquet"
    src.mkdir()
    for i in range(5):
        _frame(i * 100, 100).write_parquet(src / f"{i}.parquet")
    spec = Aggregate(by="k", total=("v", "sum"), n=("v", "len"))
    handler = LargeDataHandler(chunk_size=30, progress=False)
    state = Checkpoint(tmp_path / "state.json", interval=0)

    crashing = _CountingSink(out, failures=1)  # every file committed, the result not written
    with pytest.raises(SygnifyError, match="died") as crashed:  # typed, as every error of process()
        handler.process(str(src), transform=spec, mode="incremental", sink=crashing, checkpoint=state)
    assert isinstance(crashed.value.__cause__, OSError)
    assert not out.exists()

    sink = _CountingSink(out)
    result = handler.process(str(src), transform=spec, mode="incremental", sink=sink, checkpoint=state)
    assert result.rows_in == 0  # nothing new: the committed state is published
    assert sink.writes == 1
    expected = spec.over(_frame(0, 500).lazy()).collect()
    assert_frame_equal(pl.read_parquet(out), expected, check_exact=False)

    _frame(500, 100).write_parquet(src / "5.parquet")
    _frame(600, 100).write_parquet(src / "6.parquet")
    sink = _CountingSink(out)
    handler.process(str(src), transform=spec, mode="incremental", sink=sink, checkpoint=state)
    assert sink.writes == 1  # two new files, one write of the result
    assert_frame_equal(pl.read_parquet(out), spec.over(_frame(0, 700).lazy()).collect(), check_exact=False)

    sink = _CountingSink(out)
    handler.process(str(src), transform=spec, mode="incremental", sink=sink, checkpoint=state)
    assert sink.writes == 0  # already published
