"""The one DuckDB error map (sygnify.io.duckdb), fed real DuckDB errors, and the local connector's
one addition to it (a path outside the root)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from sygnify.connectors.local.duckdb import open_sandboxed_database, translate_local_error
from sygnify.errors import (
    DataQualityError,
    NotFoundError,
    PathEscapeError,
    QueryError,
    SchemaError,
    SygnifyError,
)
from sygnify.io.duckdb import translate_duckdb_error


def duckdb_error(database: duckdb.DuckDBPyConnection, sql: str) -> duckdb.Error:
    with pytest.raises(duckdb.Error) as caught:
        database.sql(sql).fetchall()
    return caught.value


@pytest.fixture
def sandbox() -> duckdb.DuckDBPyConnection:
    database = duckdb.connect(":memory:")
    database.execute("SET enable_external_access=false")
    return database


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM ghost", NotFoundError),
        ("SELECT CAST('x' AS INTEGER)", DataQualityError),
        ("SELEC 1", QueryError),
        ("SELECT * FROM read_csv('/etc/passwd')", QueryError),
    ],
)
def test_duckdb_errors_map_onto_the_tree(
    sandbox: duckdb.DuckDBPyConnection, sql: str, expected: type[SygnifyError]
) -> None:
    error = translate_duckdb_error(duckdb_error(sandbox, sql), "query failed", sql)
    assert type(error) is expected
    assert error.resource == sql


def test_a_missing_table_says_where_tables_come_from(sandbox: duckdb.DuckDBPyConnection) -> None:
    error = translate_duckdb_error(duckdb_error(sandbox, "SELECT * FROM ghost"), "query failed", None)
    assert "`tables`" in error.message


def test_corrupt_data_under_a_registered_dataset_is_a_data_quality_error(tmp_path: Path) -> None:
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": list(range(1000))}), path)
    raw = path.read_bytes()
    path.write_bytes(raw[:200] + b"x" * 300 + raw[500:])
    database = duckdb.connect(":memory:")
    database.register("t", ds.dataset(str(path)))
    error = translate_duckdb_error(duckdb_error(database, "SELECT sum(x) FROM t"), "query failed", None)
    assert isinstance(error, DataQualityError)


def test_local_adds_only_the_path_escape(tmp_path: Path) -> None:
    database = open_sandboxed_database(tmp_path.resolve(), threads=1, memory_limit=None)
    escape = duckdb_error(database, "SELECT * FROM read_csv('/etc/passwd')")
    assert isinstance(translate_local_error(escape, "query failed", None), PathEscapeError)
    missing = duckdb_error(database, f"SELECT * FROM read_parquet('{tmp_path.resolve()}/none.parquet')")
    assert type(translate_local_error(missing, "query failed", None)) is NotFoundError
    syntax = duckdb_error(database, "SELEC 1")
    assert type(translate_local_error(syntax, "query failed", None)) is QueryError
    # Arrow's own errors (reading local files through pyarrow) keep their map.
    assert isinstance(translate_local_error(pa.ArrowTypeError("x"), "read failed", None), SchemaError)
    database.close()
