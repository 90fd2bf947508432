"""``pip install "sygnify[delta]"`` alone writes, appends to and reads a Delta Lake table.

On the local connector, with delta-rs. In the ``delta``-only session
(``SYGNIFY_EXTRA_ONLY=delta``: sygnify[delta] and pytest, nothing else) it also checks that
no other extra's packages (pandas, which older deltalake releases needed, above all) are there.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from tests.extras._only import check_alone, only_extra


@pytest.mark.skipif(only_extra() != "delta", reason="only in the delta-only environment")
def test_the_environment_holds_the_delta_extra_alone() -> None:
    check_alone("delta")


def test_write_append_and_read_a_delta_table_with_the_delta_extra(tmp_path: Path) -> None:
    with CloudDataConnector(environ={}) as connector:
        lake = connector.connect("local", root=tmp_path)
        lake.write(pa.table({"id": [1, 2], "v": ["a", "b"]}), "t/", format="delta")
        lake.write(pa.table({"id": [3], "v": ["c"]}), "t/", format="delta", mode="append")
        table = pa.Table.from_batches(list(lake.stream("t/", format="delta")))
        assert sorted(table.column("id").to_pylist()) == [1, 2, 3]
        frame = lake.scan("t/", format="delta").filter(pl.col("id") > 1).select("v").collect()
        assert sorted(frame["v"].to_list()) == ["b", "c"]
        first = lake.scan("t/", format="delta", version=0).collect()
        assert first.height == 2
