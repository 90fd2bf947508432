"""Polars ``scan()`` over a SQL table, with projection, filter and limit pushed into the SQL.

SQL connectors (BigQuery, Snowflake, ...) share this: Polars hands the IO source the
columns it needs, a predicate and a row limit; the simple parts of the predicate
(comparisons of a column with literals, ``&``, ``|``, ``~``, ``is_null``, ``is_in``) become
a parameterized ``WHERE`` clause, and the whole predicate is always applied again in
Polars, so a predicate the translator does not understand costs speed, never correctness.
A pushed condition never drops a row Polars keeps: where the database compares NaN
differently from Polars, the dialect says how to test for it (:class:`SqlDialect`).
Values always travel as query parameters, never inside the SQL text::

    >>> import polars as pl
    >>> dialect = SqlDialect(quote=lambda name: f"`{name}`", placeholder=lambda name, _: f"@{name}")
    >>> pushed = translate_predicate((pl.col("id") >= 10) & pl.col("tag").is_in(["a", "b"]), dialect)
    >>> pushed.sql, [param.value for param in pushed.params], pushed.complete
    ('(`id` >= @p0) AND (`tag` IN (@p1, @p2))', [10, 'a', 'b'], True)
    >>> select_sql("`ds.t`", ["id"], pushed, None, dialect)
    'SELECT `id` FROM `ds.t` WHERE (`id` >= @p0) AND (`tag` IN (@p1, @p2))'
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
from polars.io.plugins import register_io_source

from sygnify.io.polars_source import finish_frames

__all__ = [
    "Pushdown",
    "SqlDialect",
    "SqlParam",
    "scan_sql_table",
    "select_sql",
    "translate_predicate",
]

_COMPARISONS = {
    "Eq": "=",
    "NotEq": "<>",
    "Lt": "<",
    "LtEq": "<=",
    "Gt": ">",
    "GtEq": ">=",
}
_MIRRORED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_LOGICAL = {"And": "AND", "LogicalAnd": "AND", "Or": "OR", "LogicalOr": "OR"}
#: Lists longer than this are filtered in Polars only (huge IN lists hurt the warehouse).
MAX_IN_LIST = 1_000


@dataclass(frozen=True)
class SqlParam:
    """One query parameter: its generated name (``p0``, ``p1``...) and its Python value."""

    name: str
    value: Any


@dataclass(frozen=True)
class SqlDialect:
    """How a warehouse spells identifiers and parameter placeholders.

    ``quote(column)`` returns a quoted identifier; ``placeholder(name, index)`` the
    placeholder of the parameter called ``name`` at position ``index`` (``@p0`` for
    BigQuery, ``?`` for qmark-style drivers, ``$1`` for PostgreSQL); ``fold(name)`` what
    the database makes of an unquoted identifier (PostgreSQL lower-cases it, Snowflake
    upper-cases it).

    ``is_nan(column)`` is the SQL test for NaN in a database that compares NaN the IEEE way
    (every ordering comparison with NaN false: BigQuery's ``IS_NAN(x)``). Polars ranks NaN
    above every number, so a pushed ``>``/``>=`` on a float column then also asks for NaN.
    ``None`` (the default) declares a database that orders NaN as Polars does, above every
    number and equal to itself (PostgreSQL, Snowflake, DuckDB): no guard is needed there.
    """

    quote: Callable[[str], str]
    placeholder: Callable[[str, int], str]
    fold: Callable[[str], str] = str
    is_nan: Callable[[str], str] | None = None


@dataclass
class Pushdown:
    """The SQL form of (part of) a predicate: ``sql`` is None when nothing translated."""

    sql: str | None = None
    params: list[SqlParam] = field(default_factory=list)
    complete: bool = True


class _Untranslatable(Exception):
    pass


def _literal_value(node: dict[str, Any]) -> Any:
    """Evaluate a serialized literal node with Polars itself (handles every literal type)."""
    expr = pl.Expr.deserialize(io.StringIO(json.dumps(node)), format="json")
    series = pl.select(expr.alias("v")).to_series()
    if series.len() != 1:
        raise _Untranslatable
    value = series.item()
    return value.to_list() if isinstance(value, pl.Series) else value


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


class _Translator:
    def __init__(
        self, dialect: SqlDialect, params: list[SqlParam], schema: Mapping[str, pl.DataType] | None
    ) -> None:
        self.dialect = dialect
        self.params = params
        self.schema = schema

    def may_hold_nan(self, node: Any, value: Any) -> bool:
        """Whether the column ``node`` may hold NaN (unknown columns: when compared with a number)."""
        name = node["Column"]
        if self.schema is not None and name in self.schema:
            return self.schema[name].is_float()
        return isinstance(value, int | float) and not isinstance(value, bool)

    def _param(self, value: Any) -> str:
        if value is None:
            raise _Untranslatable  # comparisons with NULL are never true in SQL
        name = f"p{len(self.params)}"
        self.params.append(SqlParam(name, value))
        return self.dialect.placeholder(name, len(self.params) - 1)

    def column(self, node: Any) -> str:
        if isinstance(node, dict) and set(node) == {"Column"} and isinstance(node["Column"], str):
            return self.dialect.quote(node["Column"])
        raise _Untranslatable

    @staticmethod
    def is_literal(node: Any) -> bool:
        return isinstance(node, dict) and set(node) == {"Literal"}

    def expr(self, node: Any) -> str:
        if not isinstance(node, dict) or len(node) != 1:
            raise _Untranslatable
        kind, body = next(iter(node.items()))
        if kind == "BinaryExpr":
            op = body["op"]
            if op in _LOGICAL:
                return f"({self.expr(body['left'])} {_LOGICAL[op]} {self.expr(body['right'])})"
            if op in _COMPARISONS:
                sql_op = _COMPARISONS[op]
                left, right = body["left"], body["right"]
                if self.is_literal(left) and not self.is_literal(right):
                    left, right, sql_op = right, left, _MIRRORED[sql_op]
                column = self.column(left)
                if not self.is_literal(right):
                    raise _Untranslatable
                value = _literal_value(right)
                if _is_nan(value):
                    raise _Untranslatable  # Polars and SQL disagree on every comparison with NaN
                condition = f"{column} {sql_op} {self._param(value)}"
                is_nan = self.dialect.is_nan
                # Polars: NaN > every number. IEEE SQL: NaN > x is false, so ask for NaN too.
                # (<, <=, =, <> already agree: NaN is never below or equal to a number.)
                if sql_op in (">", ">=") and is_nan is not None and self.may_hold_nan(left, value):
                    return f"({condition} OR {is_nan(column)})"
                return f"({condition})"
            raise _Untranslatable
        if kind == "Function":
            function, inputs = body["function"], body["input"]
            boolean = function.get("Boolean") if isinstance(function, dict) else None
            if boolean == "IsNull":
                return f"({self.column(inputs[0])} IS NULL)"
            if boolean == "IsNotNull":
                return f"({self.column(inputs[0])} IS NOT NULL)"
            if boolean == "Not":
                return f"(NOT {self.expr(inputs[0])})"
            if isinstance(boolean, dict) and "IsIn" in boolean and len(inputs) == 2:
                column = self.column(inputs[0])
                if not self.is_literal(inputs[1]):
                    raise _Untranslatable
                values = _literal_value(inputs[1])
                if not isinstance(values, list) or not 0 < len(values) <= MAX_IN_LIST or None in values:
                    raise _Untranslatable
                if any(_is_nan(value) for value in values):
                    raise _Untranslatable
                return f"({column} IN ({', '.join(self._param(value) for value in values)}))"
        raise _Untranslatable


def _conjuncts(node: Any) -> list[Any]:
    if isinstance(node, dict) and "BinaryExpr" in node and node["BinaryExpr"]["op"] in ("And", "LogicalAnd"):
        return _conjuncts(node["BinaryExpr"]["left"]) + _conjuncts(node["BinaryExpr"]["right"])
    return [node]


def translate_predicate(
    predicate: pl.Expr | None, dialect: SqlDialect, schema: Mapping[str, pl.DataType] | None = None
) -> Pushdown:
    """Translate what can be translated of ``predicate`` into a parameterized SQL condition.

    Top-level ``&`` terms are translated one by one (a term that cannot be is left to
    Polars, and ``complete`` is then false); ``|`` and ``~`` translate only when all their
    parts do. ``schema`` (the table's column types) tells which columns are floats, for a
    dialect that compares NaN the IEEE way (:class:`SqlDialect`); without it, any column
    compared with a number is taken to be one. Every translated comparison keeps exactly
    the rows Polars keeps, NaN and null included:

        >>> ieee = SqlDialect(quote=lambda n: f"`{n}`", placeholder=lambda n, _: f"@{n}",
        ...                   is_nan=lambda column: f"IS_NAN({column})")
        >>> translate_predicate(pl.col("x") > 1.5, ieee, {"x": pl.Float64()}).sql
        '(`x` > @p0 OR IS_NAN(`x`))'
        >>> translate_predicate(pl.col("n") > 1, ieee, {"n": pl.Int64()}).sql
        '(`n` > @p0)'
    """
    if predicate is None:
        return Pushdown()
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:  # an expression Polars cannot serialize is simply not pushed down
        return Pushdown(complete=False)
    parts: list[str] = []
    params: list[SqlParam] = []
    complete = True
    for conjunct in _conjuncts(tree):
        attempt: list[SqlParam] = list(params)
        try:
            sql = _Translator(dialect, attempt, schema).expr(conjunct)
        except (_Untranslatable, KeyError, TypeError, IndexError, pl.exceptions.PolarsError):
            complete = False
            continue
        parts.append(sql)
        params = attempt
    if not parts:
        return Pushdown(complete=False)
    return Pushdown(" AND ".join(parts), params, complete)


def select_sql(
    table_sql: str, columns: Sequence[str] | None, pushdown: Pushdown, limit: int | None, dialect: SqlDialect
) -> str:
    """``SELECT cols FROM table [WHERE ...] [LIMIT n]``; ``table_sql`` must already be quoted."""
    projection = ", ".join(dialect.quote(column) for column in columns) if columns else "*"
    sql = f"SELECT {projection} FROM {table_sql}"
    if pushdown.sql:
        sql += f" WHERE {pushdown.sql}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql


def scan_sql_table(
    schema: pl.Schema,
    fetch: Callable[[list[str] | None, Pushdown, int | None, int], Iterator[pa.RecordBatch]],
    dialect: SqlDialect,
    *,
    batch_size: int,
    name: str,
) -> pl.LazyFrame:
    """A LazyFrame whose reads call ``fetch(columns, pushdown, limit, batch_size)``.

    ``fetch`` runs the SQL (see :func:`select_sql`) and yields Arrow batches; this function
    re-applies the full predicate, projects, casts each batch to ``schema`` (warehouses may
    send a narrower type for some batches) and stops after ``n_rows``.
    """

    def source(
        with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, size: int | None
    ) -> Iterator[pl.DataFrame]:
        pushdown = translate_predicate(predicate, dialect, schema)
        needed: list[str] | None = None
        if with_columns is not None:
            extra = predicate.meta.root_names() if predicate is not None else []
            needed = list(dict.fromkeys([*with_columns, *extra]))
            needed = [column for column in schema.names() if column in needed] or [schema.names()[0]]
        # The limit goes to SQL only when the database applies the whole filter itself.
        limit = n_rows if pushdown.complete else None
        batches = fetch(needed, pushdown, limit, batch_size)
        yield from finish_frames(
            batches, predicate=predicate, with_columns=with_columns, n_rows=n_rows, schema=schema
        )

    return register_io_source(source, schema=schema, explain_name=name)
