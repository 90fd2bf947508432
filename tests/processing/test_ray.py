"""Ray as the second distributed engine: a local Ray instance started by the executor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import ray
from polars.testing import assert_frame_equal

from sygnify.errors import ConfigurationError, DataQualityError
from sygnify.processing import Aggregate, LargeDataHandler
from sygnify.processing.executors.ray import RayExecutor
from tests.processing.conftest import convert

SPEC = Aggregate(by="account_id", usd=("usd", "sum"), n=("usd", "len"), sd=("usd", "std"))


@pytest.fixture(scope="module")
def executor() -> Iterator[RayExecutor]:
    with RayExecutor(max_workers=2) as started:
        yield started
    assert not ray.is_initialized()  # the executor started Ray, so it stopped it


def test_ray_aggregation_matches_polars(executor: RayExecutor, tx_files: Path) -> None:
    handler = LargeDataHandler(chunk_size=9_000, max_workers=2, executor=executor, progress=False)
    result = handler.process(str(tx_files / "*.parquet"), transform=[convert, SPEC], mode="parallel")
    expected = SPEC.over(convert(pl.scan_parquet(tx_files / "*.parquet"))).collect()
    assert result.executor == "ray"
    assert result.rows_in == 60_000
    assert result.output is not None
    assert_frame_equal(result.output, expected, check_exact=False)


def test_ray_writes_a_dataset_from_the_workers(executor: RayExecutor, tx_files: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    handler = LargeDataHandler(chunk_size=9_000, executor=executor, progress=False)
    result = handler.process(str(tx_files / "*.parquet"), transform=convert, mode="parallel", sink=f"{out}/")
    expected = convert(pl.scan_parquet(tx_files / "*.parquet")).collect().sort("transaction_id")
    assert_frame_equal(pl.read_parquet(out).sort("transaction_id"), expected)
    assert result.chunks == 9


def test_ray_task_errors_keep_their_type(executor: RayExecutor, tx_files: Path) -> None:
    def broken(frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.with_columns(bad=pl.lit("x").cast(pl.Int64, strict=True))

    handler = LargeDataHandler(chunk_size=9_000, executor=executor, progress=False)
    spec = Aggregate(by="account_id", n=("bad", "sum"))
    with pytest.raises(DataQualityError, match="chunk"):
        handler.process(str(tx_files / "*.parquet"), transform=[broken, spec], mode="parallel")

    def explode(value: int) -> int:
        raise DataQualityError(f"bad value {value}")

    with pytest.raises(DataQualityError, match="bad value 3"):  # raised in the worker, re-raised here
        executor.submit(explode, 3).result()


def test_ray_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="max_workers"):
        RayExecutor(max_workers=0)
    with pytest.raises(ConfigurationError, match="num_cpus"):
        RayExecutor(num_cpus=0)


def test_ray_by_name_through_the_registry(tx_files: Path) -> None:
    """``executor="ray"`` finds the plugin by entry point; an application's own Ray
    instance (here the module fixture's) is used and left running."""
    was_running = ray.is_initialized()
    with LargeDataHandler(chunk_size=20_000, executor="ray", progress=False) as handler:
        result = handler.process(str(tx_files / "*.parquet"), transform=[convert, SPEC], mode="parallel")
    assert result.executor == "ray"
    assert result.output is not None
    assert (
        result.output.height == SPEC.over(convert(pl.scan_parquet(tx_files / "*.parquet"))).collect().height
    )
    assert ray.is_initialized() == was_running
