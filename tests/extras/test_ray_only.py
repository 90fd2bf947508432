"""``pip install "sygnify[ray]"`` alone aggregates local Parquet files in parallel on Ray.

``executor="ray"`` starts a local Ray instance. In the ``ray``-only session
(``SYGNIFY_EXTRA_ONLY=ray``: sygnify[ray] and pytest, nothing else) it also checks that no
other extra's packages (pandas, which Ray Data needs but ray does not bring, above all) are
there.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from sygnify.processing import Aggregate, LargeDataHandler
from tests.extras._only import check_alone, only_extra


@pytest.mark.skipif(only_extra() != "ray", reason="only in the ray-only environment")
def test_the_environment_holds_the_ray_extra_alone() -> None:
    check_alone("ray")


def test_parallel_aggregation_on_ray_with_the_ray_extra(tmp_path: Path) -> None:
    for part in range(3):
        pl.DataFrame({"account": ["a", "b"] * 50, "usd": [float(part)] * 100}).write_parquet(
            tmp_path / f"part-{part}.parquet"
        )
    spec = Aggregate(by="account", usd=("usd", "sum"), n=("usd", "len"))
    with LargeDataHandler(chunk_size=100, max_workers=2, executor="ray", progress=False) as handler:
        result = handler.process(str(tmp_path / "*.parquet"), transform=spec, mode="parallel")
    assert result.executor == "ray"
    assert result.output is not None
    assert result.output.sort("account").to_dicts() == [
        {"account": "a", "usd": 150.0, "n": 150},
        {"account": "b", "usd": 150.0, "n": 150},
    ]
