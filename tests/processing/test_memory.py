"""Peak memory stays within ``max_memory`` on a dataset 10x larger (measured in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sygnify.demo import generate_transactions
from sygnify.processing.memory import MemoryBudget, PeakMemory

BUDGET = 80 * 2**20

JOB = textwrap.dedent(
    """
    import json, sys
    import polars as pl
    from sygnify.processing import LargeDataHandler
    src, out, mode, budget = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    def transform(lf):
        return lf.filter(pl.col("amount") > 5).with_columns(usd=pl.col("amount") * 1.1)
    handler = LargeDataHandler(max_memory=budget, chunk_size=1_000_000, progress=False)
    result = handler.process(src, transform=transform, mode=mode, sink=out)
    print(json.dumps({"delta": result.peak_memory_delta, "rows": result.rows_in,
                      "chunk_rows": result.chunk_rows}))
    """
)


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big")
    for i in range(10):  # ~1.1 GB in memory as Arrow, written piece by piece
        frame = generate_transactions(2_000_000, seed=i)
        frame.write_parquet(root / f"part-{i}.parquet", row_group_size=50_000)
        del frame
    return root


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["chunked", "streaming"])
def test_peak_rss_within_budget_on_10x_dataset(big_dataset: Path, tmp_path: Path, mode: str) -> None:
    files = sorted(big_dataset.glob("*.parquet"))
    in_memory = pq.read_table(files[0]).nbytes * len(files)  # Arrow bytes of the whole dataset
    assert in_memory >= 10 * BUDGET
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            JOB,
            str(big_dataset / "*.parquet"),
            str(tmp_path / "out") + "/",
            mode,
            str(BUDGET),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rows"] == 20_000_000 or mode == "streaming"
    assert report["delta"] <= BUDGET, report


def test_budget_shrinks_chunks_and_peak_tracker_measures() -> None:
    budget = MemoryBudget(BUDGET)
    assert budget.chunk_rows(bytes_per_row=10_000.0, ceiling=1_000_000) == 838
    samples = iter([100, 300, 200, 250])
    with PeakMemory(interval=60, rss=lambda: next(samples, 250)) as peak:
        peak.sample()
    assert (peak.baseline, peak.peak, peak.delta) == (100, 300, 200)
