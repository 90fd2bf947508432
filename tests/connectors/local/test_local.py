from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors.local.connector import LocalConnector
from sygnify.errors import (
    ConfigurationError,
    DataQualityError,
    NotFoundError,
    PathEscapeError,
    QueryError,
    SchemaError,
)
from sygnify.testing.connectors import ConnectorConformance, sample_table
from tests.connectors._emulated import format_per_target


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "lake"
    path.mkdir()
    return path


@pytest.fixture
def lake(connector: CloudDataConnector, root: Path) -> LocalConnector:
    return connector.connect("local", name="lake", root=root, tables={"tx": "tx/", "rates": "rates.csv"})


class TestLocalConformance(ConnectorConformance):
    @pytest.fixture
    def connection(self, lake: LocalConnector) -> LocalConnector:
        return lake

    @pytest.fixture(params=["parquet", "csv", "ipc", "json"])
    def dataset_target(self, request: pytest.FixtureRequest, lake: LocalConnector) -> str:
        return f"data_{request.param}/"

    def test_write_then_stream_round_trips_with_exact_batch_sizes(
        self, connection: LocalConnector, dataset_target: str
    ) -> None:
        super().test_write_then_stream_round_trips_with_exact_batch_sizes(connection, dataset_target)


@pytest.fixture(autouse=True)
def _format_per_target(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Conformance targets named data_<format>/ are written in that format."""
    format_per_target(request, monkeypatch, LocalConnector)


# -- files and formats ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["one.parquet", "one.csv", "one.jsonl", "one.arrow"])
def test_single_file_round_trip_in_every_format(lake: LocalConnector, name: str) -> None:
    table = sample_table(50)
    result = lake.write(table, f"files/{name}", mode="overwrite")
    assert result.paths == [f"files/{name}"]
    back = pa.Table.from_batches(list(lake.stream(f"files/{name}")))
    assert back.column("id").to_pylist() == list(range(50))
    assert lake.scan(f"files/{name}").select(pl.len()).collect().item() == 50


def test_glob_reads_matching_files_only(lake: LocalConnector, root: Path) -> None:
    for month in (1, 2, 3):
        lake.write(sample_table(10), f"glob/2026-0{month}.parquet", mode="overwrite")
    lake.write(sample_table(10), "glob/other.csv", mode="overwrite")
    total = sum(batch.num_rows for batch in lake.stream("glob/2026-*.parquet"))
    assert total == 30
    assert lake.scan("glob/*.parquet").select(pl.len()).collect().item() == 30


def test_partitioned_write_reads_back_with_partition_columns(lake: LocalConnector) -> None:
    data = pl.DataFrame({"region": ["eu", "us", "eu"], "amount": [1.0, 2.0, 3.0]})
    result = lake.write(data, "sales/", partition_by=["region"], mode="overwrite")
    assert all(path.startswith(("sales/region=eu/", "sales/region=us/")) for path in result.paths)
    totals = lake.scan("sales/").group_by("region").agg(pl.col("amount").sum()).sort("region").collect()
    assert totals.to_dicts() == [{"region": "eu", "amount": 4.0}, {"region": "us", "amount": 2.0}]
    streamed = pa.Table.from_batches(list(lake.stream("sales/")))
    assert sorted(streamed.column("region").to_pylist()) == ["eu", "eu", "us"]


def test_overwrite_of_a_single_file_is_atomic_and_leaves_no_temp_files(
    lake: LocalConnector, root: Path
) -> None:
    lake.write(sample_table(5), "x.parquet", mode="overwrite")
    lake.write(sample_table(7), "x.parquet", mode="overwrite")
    assert pq.read_table(root / "x.parquet").num_rows == 7
    assert lake.list() == ["x.parquet"]


def test_pandas_input_is_accepted(lake: LocalConnector) -> None:
    pd = pytest.importorskip("pandas")
    lake.write(pd.DataFrame({"a": [1, 2]}), "pd.parquet", mode="overwrite")
    assert lake.query(
        "SELECT count(*) AS n FROM read_parquet($p)", {"p": str(lake.root / "pd.parquet")}
    ).to_pylist() == [{"n": 2}]


# -- SQL ------------------------------------------------------------------------------------


def test_sql_over_configured_tables_with_positional_and_named_params(lake: LocalConnector) -> None:
    lake.write(
        pl.DataFrame({"account": ["a", "b", "a"], "amount": [5, 7, 1], "currency": ["EUR"] * 3}), "tx/"
    )
    lake.write(pl.DataFrame({"currency": ["EUR"], "usd_rate": [1.1]}), "rates.csv", mode="overwrite")
    positional = lake.query(
        "SELECT account, sum(amount) AS s FROM tx WHERE amount > ? GROUP BY 1 ORDER BY 1", [1]
    )
    assert positional.to_pylist() == [{"account": "a", "s": 5}, {"account": "b", "s": 7}]
    named = lake.query(
        "SELECT round(sum(amount * usd_rate), 2) AS usd FROM tx JOIN rates USING (currency) "
        "WHERE account = $acct",
        {"acct": "a"},
    )
    assert named.to_pylist() == [{"usd": 6.6}]


def test_parameters_are_values_never_sql(lake: LocalConnector) -> None:
    lake.write(pl.DataFrame({"account": ["a"], "amount": [1]}), "tx/")
    injection = "a' OR '1'='1"
    assert lake.query("SELECT * FROM tx WHERE account = ?", [injection]).num_rows == 0
    assert lake.query("SELECT ? AS v", ["x'); DROP TABLE tx; --"]).to_pylist() == [
        {"v": "x'); DROP TABLE tx; --"}
    ]
    assert lake.query("SELECT count(*) AS n FROM tx").to_pylist() == [{"n": 1}]


def test_stream_of_sql_gives_exact_batches(lake: LocalConnector) -> None:
    sizes = [b.num_rows for b in lake.stream("SELECT * FROM range(250000) t(x)", batch_size=100_000)]
    assert sizes == [100_000, 100_000, 50_000]


def test_bad_sql_is_a_query_error(lake: LocalConnector) -> None:
    with pytest.raises(QueryError, match="syntax error"):
        lake.query("SELEC 1")
    with pytest.raises(QueryError):
        lake.query("SELECT nope FROM range(3)")
    with pytest.raises(QueryError):
        lake.query("SELECT ?", [1, 2])


def test_unknown_table_is_not_found(lake: LocalConnector) -> None:
    with pytest.raises(NotFoundError):
        lake.query("SELECT * FROM no_such_table")


def test_sandbox_settings_cannot_be_changed_from_sql(lake: LocalConnector) -> None:
    with pytest.raises(QueryError, match="locked"):
        lake.query("SET enable_external_access = true")


def test_configured_table_without_files_names_the_table(connector: CloudDataConnector, root: Path) -> None:
    lake = connector.connect("local", root=root, tables={"ghost": "ghost/*.parquet"})
    assert lake.query("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    with pytest.raises(NotFoundError, match=r"table 'ghost' is configured as 'ghost/\*\.parquet'"):
        lake.query("SELECT * FROM ghost")
    lake.write(sample_table(3), "ghost/a.parquet")
    assert lake.query("SELECT count(*) AS n FROM ghost").to_pylist() == [{"n": 3}]


def test_invalid_table_name_is_rejected(connector: CloudDataConnector, root: Path) -> None:
    with pytest.raises(ConfigurationError, match="identifier"):
        connector.connect("local", root=root, tables={"bad name; drop": "x.parquet"})


# -- bad input --------------------------------------------------------------------------


def test_missing_file_is_not_found(lake: LocalConnector) -> None:
    with pytest.raises(NotFoundError):
        list(lake.stream("missing.parquet"))
    with pytest.raises(NotFoundError):
        lake.scan("missing/*.csv")


def test_malformed_csv_is_a_data_quality_error(lake: LocalConnector, root: Path) -> None:
    (root / "bad.csv").write_text("a,b\n1,2\n3,4,5,6\n7,8\n")
    with pytest.raises(DataQualityError, match=r"bad\.csv"):
        list(lake.stream("bad.csv"))
    with pytest.raises(DataQualityError):
        lake.query(
            "SELECT * FROM read_csv($p, columns={'a': 'INT', 'b': 'INT'})", {"p": str(root / "bad.csv")}
        )
    (root / "bad_value.csv").write_text("a,b\n1,2\nx,4\n")
    with pytest.raises(DataQualityError, match="Line: 3"):
        lake.query(
            "SELECT * FROM read_csv($p, columns={'a': 'INT', 'b': 'INT'})", {"p": str(root / "bad_value.csv")}
        )


def test_corrupt_parquet_is_a_data_quality_error(lake: LocalConnector, root: Path) -> None:
    (root / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(DataQualityError):
        list(lake.stream("corrupt.parquet"))
    with pytest.raises(DataQualityError):
        lake.scan("corrupt.parquet")


def test_schema_drift_between_files_is_typed(lake: LocalConnector, root: Path) -> None:
    (root / "drift").mkdir()
    pq.write_table(pa.table({"a": pa.array([1, 2], pa.int64())}), root / "drift" / "1.parquet")
    pq.write_table(pa.table({"a": pa.array(["x", "y"])}), root / "drift" / "2.parquet")
    with pytest.raises((SchemaError, DataQualityError)):
        list(lake.stream("drift/"))


def test_mixed_formats_need_an_explicit_format(lake: LocalConnector) -> None:
    lake.write(sample_table(2), "mixed/a.parquet", mode="overwrite")
    lake.write(sample_table(2), "mixed/b.csv", mode="overwrite")
    with pytest.raises(ConfigurationError, match="mixes file formats"):
        list(lake.stream("mixed/"))


def test_append_to_a_single_file_is_refused(lake: LocalConnector) -> None:
    lake.write(sample_table(2), "single.parquet", mode="overwrite")
    with pytest.raises(ConfigurationError, match="cannot append"):
        lake.write(sample_table(2), "single.parquet")


def test_partition_by_a_missing_column_is_a_schema_error(lake: LocalConnector) -> None:
    with pytest.raises(SchemaError, match="nope"):
        lake.write(sample_table(2), "parts/", partition_by=["nope"])


def test_unsupported_data_is_a_configuration_error(lake: LocalConnector) -> None:
    with pytest.raises(ConfigurationError, match="cannot use list"):
        lake.write([1, 2, 3], "x.parquet")


# -- confinement ------------------------------------------------------------------------


@pytest.fixture
def secret_outside(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    return secret


@pytest.mark.parametrize("path", ["../secret.csv", "sub/../../secret.csv", "*/../../secret.csv"])
def test_relative_escapes_are_refused(lake: LocalConnector, secret_outside: Path, path: str) -> None:
    with pytest.raises(PathEscapeError):
        list(lake.stream(path))


def test_absolute_paths_outside_root_are_refused(lake: LocalConnector, secret_outside: Path) -> None:
    with pytest.raises(PathEscapeError):
        lake.scan(str(secret_outside))
    with pytest.raises(PathEscapeError):
        lake.write(sample_table(1), str(secret_outside.parent / "out.parquet"))


def test_symlinks_pointing_outside_are_refused(
    lake: LocalConnector, root: Path, secret_outside: Path
) -> None:
    os.symlink(secret_outside, root / "link.csv")
    with pytest.raises(PathEscapeError):
        list(lake.stream("link.csv"))


def test_sql_cannot_read_or_write_outside_root(lake: LocalConnector, secret_outside: Path) -> None:
    with pytest.raises(PathEscapeError):
        lake.query("SELECT * FROM read_csv(?)", [str(secret_outside)])
    with pytest.raises(PathEscapeError):
        lake.query(f"SELECT * FROM '{secret_outside}'")
    with pytest.raises(QueryError):
        lake.query("SELECT current_setting('enable_external_access') AS v; SET enable_external_access = true")


def test_list_is_confined_and_relative(lake: LocalConnector) -> None:
    lake.write(sample_table(1), "a/b/c.parquet", mode="overwrite")
    assert lake.list("a") == ["a/b/c.parquet"]
    assert lake.list("nothing-here") == []
    with pytest.raises(PathEscapeError):
        lake.list("..")


def test_missing_root_without_create_is_not_found(connector: CloudDataConnector, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        connector.connect("local", root=tmp_path / "absent", create_root=False)


# -- SQL reads what scan() and stream() read ----------------------------------------------


def _rows_everywhere(lake: LocalConnector, table: str, source: str) -> dict[str, int]:
    (count,) = lake.query(f"SELECT count(*) AS n FROM {table}").column("n").to_pylist()
    return {
        "query": count,
        "stream": sum(batch.num_rows for batch in lake.stream(source)),
        "scan": lake.scan(source).collect().height,
    }


@pytest.mark.parametrize("source", ["d", "d/", "d/**/*.parquet", "d/*.parquet"])
def test_sql_over_a_table_skips_hidden_and_temporary_files(
    connector: CloudDataConnector, root: Path, source: str
) -> None:
    visible = root / "d" / "part-0.parquet"
    hidden = [
        root / "d" / "_temporary" / "0" / "part-1.parquet",  # a job's staging directory
        root / "d" / ".hid" / "part-2.parquet",
        root / "d" / "_d.parquet",
        root / "d" / ".e.parquet",
    ]
    for path in [visible, *hidden]:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(sample_table(10), path)
    lake = connector.connect("local", root=root, tables={"d": source})
    assert _rows_everywhere(lake, "d", source) == {"query": 10, "stream": 10, "scan": 10}
    # The file list is built per query: a new file shows up, a new hidden one does not.
    pq.write_table(sample_table(5), root / "d" / "part-3.parquet")
    pq.write_table(sample_table(5), root / "d" / "_part-4.parquet")
    assert _rows_everywhere(lake, "d", source) == {"query": 15, "stream": 15, "scan": 15}


def test_sql_over_a_hive_partitioned_table_has_the_partition_columns(
    connector: CloudDataConnector, root: Path
) -> None:
    lake = connector.connect("local", root=root, tables={"sales": "sales/"})
    lake.write(pl.DataFrame({"day": [1, 1, 2], "amount": [5, 7, 1]}), "sales/", partition_by=["day"])
    (root / "sales" / "day=3" / "_temporary").mkdir(parents=True)
    pq.write_table(pa.table({"amount": [100]}), root / "sales" / "day=3" / "_temporary" / "part.parquet")
    totals = lake.query("SELECT day, sum(amount) AS total FROM sales GROUP BY day ORDER BY day")
    assert totals.to_pylist() == [{"day": 1, "total": 12}, {"day": 2, "total": 1}]
    assert _rows_everywhere(lake, "sales", "sales/") == {"query": 3, "stream": 3, "scan": 3}


def test_a_table_whose_files_are_all_removed_is_not_found_again(
    connector: CloudDataConnector, root: Path
) -> None:
    lake = connector.connect("local", root=root, tables={"d": "d/"})
    lake.write(sample_table(3), "d/", mode="overwrite")
    assert lake.query("SELECT count(*) AS n FROM d").to_pylist() == [{"n": 3}]
    for path in (root / "d").iterdir():
        if path.is_file():  # the data; the commit log stays
            path.unlink()
    with pytest.raises(NotFoundError, match=r"table 'd' is configured as 'd/'"):
        lake.query("SELECT * FROM d")
