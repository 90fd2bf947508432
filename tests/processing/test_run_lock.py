"""One run at a time per incremental job: a second run is refused, a killed run's lock is gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from sygnify.errors import ConcurrentRunError, ConfigurationError
from sygnify.processing import Checkpoint, LargeDataHandler

SLOW_JOB = textwrap.dedent(
    """
    import sys, time
    import polars as pl
    from sygnify.processing import LargeDataHandler

    def slow(frame: pl.DataFrame) -> pl.DataFrame:
        time.sleep(0.2)
        return frame

    src, out, state = sys.argv[1:]
    LargeDataHandler(chunk_size=50, progress=False).process(
        src, transform=slow, mode="incremental", sink=out + "/", checkpoint=state, cursor="id")
    """
)


def _frame(rows: int) -> pl.DataFrame:
    return pl.DataFrame({"id": range(rows), "v": [float(i % 13) for i in range(rows)]})


def _wait_for_holder(lock: Path, pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"the job in pid {pid} never took {lock}")


def test_second_run_is_refused_and_a_killed_runs_lock_is_released(tmp_path: Path) -> None:
    src, out, state = tmp_path / "src", tmp_path / "out", tmp_path / "state.json"
    src.mkdir()
    _frame(2_000).write_parquet(src / "a.parquet")  # 40 chunks of 0.2 s: the job runs ~8 s
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    handler = LargeDataHandler(chunk_size=50, progress=False)
    child = subprocess.Popen([sys.executable, "-c", SLOW_JOB, str(src), str(out), str(state)], env=env)
    try:
        _wait_for_holder(Path(f"{state}.lock"), child.pid)
        with pytest.raises(ConcurrentRunError, match=f"pid {child.pid}"):
            handler.process(str(src), mode="incremental", sink=f"{out}/", checkpoint=state, cursor="id")
        assert child.poll() is None  # the refused run did not disturb the first one
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    # The kernel dropped the dead run's lock: the rerun starts at once and completes the job.
    started = time.monotonic()
    result = handler.process(str(src), mode="incremental", sink=f"{out}/", checkpoint=state, cursor="id")
    assert time.monotonic() - started < 30
    assert 0 < result.rows_in <= 2_000
    assert_frame_equal(pl.read_parquet(out).sort("id"), _frame(2_000))


def test_a_held_checkpoint_refuses_another_run_in_the_same_process(tmp_path: Path) -> None:
    _frame(10).write_parquet(tmp_path / "a.parquet")
    state = tmp_path / "state.json"
    handler = LargeDataHandler(progress=False)
    with Checkpoint(state).lock(), pytest.raises(ConcurrentRunError, match="in progress"):
        handler.process(
            str(tmp_path / "a.parquet"), mode="incremental", sink=f"{tmp_path}/out/", checkpoint=state
        )
    result = handler.process(
        str(tmp_path / "a.parquet"), mode="incremental", sink=f"{tmp_path}/out/", checkpoint=state
    )
    assert result.rows_in == 10


def test_lock_ttl_is_at_least_a_second(tmp_path: Path) -> None:
    for ttl in (0, 0.2):  # a lease renewed every ttl/3 seconds: no hammering the store
        with pytest.raises(ConfigurationError, match="lock_ttl"):
            Checkpoint(tmp_path / "s.json", lock_ttl=ttl)
