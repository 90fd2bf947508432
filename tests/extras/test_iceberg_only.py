"""``pip install "sygnify[iceberg]"`` alone writes, appends to and reads an Iceberg table.

On the local connector, with pyiceberg and a SQLite catalog. In the ``iceberg``-only session
(``SYGNIFY_EXTRA_ONLY=iceberg``: sygnify[iceberg] and pytest, nothing else) it also checks
that no other extra's packages (pandas above all) are there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from tests.extras._only import check_alone, only_extra


@pytest.mark.skipif(only_extra() != "iceberg", reason="only in the iceberg-only environment")
def test_the_environment_holds_the_iceberg_extra_alone() -> None:
    check_alone("iceberg")


def test_write_append_and_read_an_iceberg_table_with_the_iceberg_extra(tmp_path: Path) -> None:
    options: dict[str, Any] = {"format": "iceberg", "catalog": f"sqlite:///{tmp_path / 'iceberg.db'}"}
    with CloudDataConnector(environ={}) as connector:
        lake = connector.connect("local", root=tmp_path / "root")
        lake.write(pa.table({"id": [1, 2], "v": ["a", "b"]}), "ice/", **options)
        lake.write(pa.table({"id": [3], "v": ["c"]}), "ice/", **options)
        table = pa.Table.from_batches(list(lake.stream("ice/", **options)))
        assert sorted(table.column("id").to_pylist()) == [1, 2, 3]
        frame = lake.scan("ice/", **options).filter(pl.col("id") > 1).select("v").collect()
        assert sorted(frame["v"].to_list()) == ["b", "c"]
