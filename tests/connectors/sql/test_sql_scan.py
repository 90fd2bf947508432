"""The shared SQL scan: predicate translation, and pushdown results checked against DuckDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sygnify.connectors._sql.scan import (
    Pushdown,
    SqlDialect,
    scan_sql_table,
    select_sql,
    translate_predicate,
)

QMARK = SqlDialect(quote=lambda name: '"' + name.replace('"', '""') + '"', placeholder=lambda _n, _i: "?")

DATA = pl.DataFrame(
    {
        "id": list(range(20)),
        "name": [f"n{i % 4}" if i % 5 else None for i in range(20)],
        "amount": [i * 1.5 if i % 3 else None for i in range(20)],
        "at": [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=i) for i in range(20)],
    }
)


class DuckDBTable:
    """A fake warehouse: runs the generated SQL in DuckDB and records it."""

    def __init__(self, frame: pl.DataFrame, batch_rows: int = 7) -> None:
        self.arrow = frame.to_arrow()
        self.batch_rows = batch_rows
        self.calls: list[tuple[str, list[Any], int | None]] = []
        self.database = duckdb.connect()
        self.database.register("t", self.arrow)

    def fetch(
        self, columns: list[str] | None, pushdown: Pushdown, limit: int | None, size: int
    ) -> Iterator[pa.RecordBatch]:
        sql = select_sql('"t"', columns, pushdown, limit, QMARK)
        params = [param.value for param in pushdown.params]
        self.calls.append((sql, params, limit))
        table = self.database.sql(sql, params=params).to_arrow_table()
        yield from table.to_batches(max_chunksize=self.batch_rows)

    def frame(self) -> pl.LazyFrame:
        return scan_sql_table(DATA.schema, self.fetch, QMARK, batch_size=1000, name="duckdb:t")


@pytest.mark.parametrize(
    ("predicate", "sql", "values"),
    [
        (pl.col("id") == 3, '("id" = ?)', [3]),
        (pl.col("id") != 3, '("id" <> ?)', [3]),
        (5 < pl.col("id"), '("id" > ?)', [5]),  # noqa: SIM300 - literal on the left on purpose
        (pl.col("name").is_null(), '("name" IS NULL)', []),
        (pl.col("name").is_not_null(), '("name" IS NOT NULL)', []),
        (~(pl.col("id") <= 2), '(NOT ("id" <= ?))', [2]),
        ((pl.col("id") < 2) | (pl.col("name") == "n1"), '(("id" < ?) OR ("name" = ?))', [2, "n1"]),
        (pl.col("name").is_in(["n1", "n2"]), '("name" IN (?, ?))', ["n1", "n2"]),
    ],
)
def test_simple_predicates_translate(predicate: pl.Expr, sql: str, values: list[Any]) -> None:
    pushed = translate_predicate(predicate, QMARK)
    assert pushed.sql == sql
    assert [param.value for param in pushed.params] == values
    assert pushed.complete


def test_datetime_literals_keep_their_time_zone() -> None:
    moment = dt.datetime(2024, 1, 5, tzinfo=dt.timezone.utc)
    pushed = translate_predicate(pl.col("at") >= moment, QMARK)
    assert pushed.params[0].value == moment


def test_untranslatable_parts_stay_in_polars() -> None:
    partial = translate_predicate((pl.col("id") > 3) & (pl.col("name").str.starts_with("n")), QMARK)
    assert partial.sql == '("id" > ?)'
    assert not partial.complete
    neither = translate_predicate((pl.col("id") > 3) | (pl.col("name").str.starts_with("n")), QMARK)
    assert neither.sql is None
    assert not neither.complete
    assert translate_predicate(pl.col("id") == pl.col("amount"), QMARK).sql is None
    assert translate_predicate(pl.col("name").is_in(["a", None]), QMARK).sql is None
    assert translate_predicate(None, QMARK) == Pushdown()


def test_values_never_enter_the_sql_text() -> None:
    hostile = "x'); DROP TABLE t; --"
    pushed = translate_predicate(pl.col("name") == hostile, QMARK)
    assert hostile not in (pushed.sql or "")
    assert (
        select_sql('"t"', ['we"ird'], pushed, 5, QMARK)
        == 'SELECT "we""ird" FROM "t" WHERE ("name" = ?) LIMIT 5'
    )


def test_scan_pushes_projection_filter_and_limit() -> None:
    table = DuckDBTable(DATA)
    result = table.frame().filter(pl.col("id") >= 15).select("name").collect()
    assert result["name"].to_list() == DATA.filter(pl.col("id") >= 15)["name"].to_list()
    sql, params, _ = table.calls[-1]
    assert sql == 'SELECT "id", "name" FROM "t" WHERE ("id" >= ?)'
    assert params == [15]
    assert table.frame().head(3).collect().height == 3
    assert table.calls[-1][0].endswith("LIMIT 3")


def test_partial_pushdown_does_not_push_the_limit() -> None:
    table = DuckDBTable(DATA)
    frame = table.frame().filter((pl.col("id") > 2) & (pl.col("name").str.ends_with("1"))).head(2)
    expected = DATA.filter((pl.col("id") > 2) & (pl.col("name").str.ends_with("1"))).head(2)
    assert frame.collect().equals(expected)
    assert "LIMIT" not in table.calls[-1][0]


def test_batches_are_cast_to_the_declared_schema() -> None:
    narrow = DATA.with_columns(pl.col("id").cast(pl.Int32))
    table = DuckDBTable(narrow)
    collected = table.frame().collect()
    assert collected.schema["id"] == pl.Int64
    assert collected.equals(DATA)


_columns = st.sampled_from(["id", "amount"])
_leaf = st.one_of(
    st.builds(lambda c, v: pl.col(c) > v, _columns, st.integers(-2, 25)),
    st.builds(lambda c, v: pl.col(c) <= v, _columns, st.integers(-2, 25)),
    st.builds(lambda v: pl.col("name") == v, st.sampled_from(["n0", "n1", "n3", "zz"])),
    st.builds(lambda vs: pl.col("id").is_in(vs), st.lists(st.integers(0, 25), min_size=1, max_size=4)),
    st.just(pl.col("name").is_null()),
    st.just(pl.col("amount").is_not_null()),
    st.just(pl.col("name").str.contains("2")),  # never translated
)
_predicates = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.builds(lambda a, b: a & b, inner, inner),
        st.builds(lambda a, b: a | b, inner, inner),
        st.builds(lambda a: ~a, inner),
    ),
    max_leaves=5,
)


@settings(max_examples=60, deadline=None)
@given(predicate=_predicates, limit=st.one_of(st.none(), st.integers(1, 8)))
def test_pushdown_never_changes_the_result(predicate: pl.Expr, limit: int | None) -> None:
    table = DuckDBTable(DATA)
    frame = table.frame().filter(predicate).select("id", "name")
    expected = DATA.filter(predicate).select("id", "name")
    if limit is not None:
        frame, expected = frame.head(limit), expected.head(limit)
    assert frame.collect().sort("id").equals(expected.sort("id"))
