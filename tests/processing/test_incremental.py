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
import pytest
from polars.testing import assert_frame_equal

from sygnify.errors import ConfigurationError
from sygnify.processing import Aggregate, LargeDataHandler


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
    from sygnify.processing import Aggregate, LargeDataHandler
    src, out, state, agg, state2, cursor = sys.argv[1:]
    handler = LargeDataHandler(chunk_size=40, progress=False)
    handler.process(src, mode="incremental", sink=out + "/", checkpoint=state,
                    cursor=cursor or None)
    spec = Aggregate(by="k", total=("v", "sum"), sd=("v", "std"), n=("v", "len"))
    handler.process(src, transform=spec, mode="incremental", sink=agg, checkpoint=state2,
                    cursor=cursor or None)
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
def test_sigkill_at_random_points_then_rerun_equals_clean_run(tmp_path: Path, cursor: str) -> None:
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
    leftovers = [p.name for p in (tmp_path / "crashy" / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == [] or all(name.startswith(".sygnify-tmp-") for name in leftovers)
