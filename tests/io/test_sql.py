"""The one "is this SQL?" detector (sygnify.io.sql) and DuckDB's dialect of it."""

from __future__ import annotations

import pytest

from sygnify.io import duckdb as io_duckdb
from sygnify.io.sql import looks_like_sql

SQL = [
    "SELECT 1",
    "select * from t",
    "  \n\tWITH x AS (SELECT 1) SELECT * FROM x",
    "(SELECT 1) UNION (SELECT 2)",
    "FROM tx SELECT max(amount)",
    "VALUES (1), (2)",
    "TABLE tx",
    "SHOW TABLES",
    "DESCRIBE tx",
    "desc tx",
    "EXPLAIN SELECT 1",
    "select*from t",
    "-- the daily report\nSELECT 1",
    "/* a block\n comment */ SELECT 1",
    "-- one\n-- two\n  /* three */ with x as (select 1) select * from x",
]
NAMES = [
    "tx/*.parquet",
    "s3://bucket/select/x.parquet",
    "selections/2026.csv",
    "show.parquet",
    "describe_me.csv",
    "desc",
    "dataset.table",
    "project.dataset.table",
    '"DB"."SCHEMA"."TABLE"',
    "select/x.parquet",
    "table/",
    "with.csv",
    "-- only a comment",
    "",
]


@pytest.mark.parametrize("text", SQL)
def test_statements_are_sql(text: str) -> None:
    assert looks_like_sql(text)
    assert io_duckdb.looks_like_sql(text)


@pytest.mark.parametrize("text", NAMES)
def test_names_are_not_sql(text: str) -> None:
    assert not looks_like_sql(text)
    assert not io_duckdb.looks_like_sql(text)


@pytest.mark.parametrize("name", ["select x.parquet", "FROM 2026/*.csv", "show  tx.jsonl ", "with a.arrow"])
def test_a_file_named_like_a_keyword_and_a_word_is_a_name(name: str) -> None:
    assert not looks_like_sql(name)
    assert not looks_like_sql("./" + name)


@pytest.mark.parametrize(
    "sql", ["FROM tx", "select x.y", "FROM 'x.parquet'", "select * from x.parquet", "FROM read_csv('a.csv')"]
)
def test_a_keyword_and_more_than_a_file_name_is_sql(sql: str) -> None:
    assert looks_like_sql(sql)


@pytest.mark.parametrize("text", ["PIVOT tx ON k USING sum(v)", "unpivot t on a, b", "SUMMARIZE tx"])
def test_dialect_keywords(text: str) -> None:
    assert not looks_like_sql(text)
    assert looks_like_sql(text, dialect_keywords=("pivot", "UNPIVOT", "summarize"))
    assert io_duckdb.looks_like_sql(text)
