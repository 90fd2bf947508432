"""Small local fixes (issue #13): argument checks in stream, one bad table, zero-row datasets."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
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


def test_sql_names_files_relative_to_the_root(
    lake: LocalConnector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path
    monkeypatch.chdir("/")  # DuckDB alone would look for the files here
    lake.write(pa.table({"x": [1, 2, 3]}), "t.parquet")
    lake.write(pa.table({"x": [4], "k": ["a"]}), "parts/", partition_by=["k"])
    pa_csv.write_csv(pa.table({"y": [7]}), root / "c.csv")
    assert lake.query("SELECT count(*) AS n FROM 't.parquet'").to_pylist() == [{"n": 3}]
    assert lake.query("SELECT sum(x) AS s FROM 't.parquet' AS a JOIN 'parts/' AS b USING (x)").num_rows == 1
    assert lake.query("SELECT k FROM 'parts/'").to_pylist() == [{"k": "a"}]
    assert lake.query("SELECT y FROM read_csv('c.csv', header=true)").to_pylist() == [{"y": 7}]
    assert lake.query("SELECT 'FROM ''t.parquet''' AS s").to_pylist() == [{"s": "FROM 't.parquet'"}]


def test_sql_over_a_quoted_directory_skips_uncommitted_and_hidden_files(
    lake: LocalConnector, tmp_path: Path
) -> None:
    root = tmp_path
    lake.write(pa.table({"x": [1, 2]}), "d/")
    pq.write_table(pa.table({"x": [100]}), root / "d" / "part-00000-ffffffffffffffffffffffffffffffff.parquet")
    pq.write_table(pa.table({"x": [1000]}), root / "d" / "_tmp.parquet")
    assert lake.query("SELECT sum(x) AS s FROM 'd/'").to_pylist() == [{"s": 3}]
    assert lake.query("SELECT sum(x) AS s FROM 'd/*.parquet'").to_pylist() == [{"s": 3}]


def test_a_file_named_like_sql_streams_as_a_file(lake: LocalConnector) -> None:
    lake.write(pa.table({"x": [5]}), "select x.parquet")
    assert pa.Table.from_batches(list(lake.stream("select x.parquet"))).to_pylist() == [{"x": 5}]
