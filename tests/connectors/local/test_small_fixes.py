"""Small local fixes (issue #13): argument checks in stream, one bad table, zero-row datasets."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.local.connector import LocalConnector
from sygnify.errors import ConfigurationError, DataQualityError, SchemaError


@pytest.fixture
def lake(connector: CloudDataConnector, tmp_path: Path) -> LocalConnector:
    pq.write_table(pa.table({"account": ["a", "b"], "amount": [1, 2]}), tmp_path / "good.parquet")
    connection = connector.connect(
        "local", root=tmp_path, tables={"good": "good.parquet", "bad": "bad.parquet", "empty": "empty/"}
    )
    assert isinstance(connection, LocalConnector)
    return connection


def test_unknown_stream_column_is_a_schema_error_naming_the_columns(lake: LocalConnector) -> None:
    with pytest.raises(
        SchemaError, match=r"no column 'nope' in 'good.parquet'; its columns are account, amount"
    ):
        list(lake.stream("good.parquet", columns=["amount", "nope"]))


@pytest.mark.parametrize("batch_size", [0, -1])
def test_batch_size_below_one_is_a_configuration_error(lake: LocalConnector, batch_size: int) -> None:
    for source in ("good.parquet", "SELECT 1"):
        with pytest.raises(ConfigurationError, match=f"batch_size must be >= 1, got {batch_size}"):
            list(lake.stream(source, batch_size=batch_size))


def test_a_corrupt_table_breaks_only_the_queries_naming_it(lake: LocalConnector) -> None:
    (lake.root / "bad.parquet").write_bytes(b"PAR1 not a parquet file PAR1")
    assert lake.query("SELECT count(*) AS n FROM good").to_pylist() == [{"n": 2}]
    with pytest.raises(DataQualityError, match="table 'bad'") as caught:
        lake.query("SELECT * FROM good JOIN bad USING (account)")
    assert caught.value.resource == "bad"
    with pytest.raises(DataQualityError, match="table 'bad'"):
        list(lake.stream("SELECT * FROM bad"))
    # Once the file is fixed, the table reads again.
    pq.write_table(pa.table({"account": ["a"], "amount": [5]}), lake.root / "bad.parquet")
    assert lake.query("SELECT sum(amount) AS s FROM bad").to_pylist() == [{"s": 5}]


def test_a_zero_row_dataset_keeps_its_schema(lake: LocalConnector) -> None:
    schema = pa.schema([("account", pa.string()), ("amount", pa.int64())])
    result = lake.write(schema.empty_table(), "empty/")
    assert result.rows == 0
    assert len(result.paths) == 1
    batches = list(lake.stream("empty/"))
    assert sum(batch.num_rows for batch in batches) == 0
    assert all(batch.schema == schema for batch in batches)
    frame = lake.scan("empty/").collect()
    assert frame.height == 0
    assert frame.columns == ["account", "amount"]
    table = lake.query("SELECT * FROM empty")
    assert table.num_rows == 0
    assert table.schema.names == ["account", "amount"]
