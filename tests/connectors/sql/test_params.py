"""Parameter-style conversion shared by the SQL connectors (sygnify.connectors._sql.params)."""

from __future__ import annotations

import pytest

from sygnify.connectors._sql.params import bind_params
from sygnify.errors import ConfigurationError, QueryError


@pytest.mark.parametrize(
    ("sql", "params", "style", "expected"),
    [
        ("SELECT ?, ?", [1, 2], "dollar", ("SELECT $1, $2", [1, 2])),
        ("SELECT ?, ?", [1, 2], "qmark", ("SELECT ?, ?", [1, 2])),
        ("SELECT $2, $1", [1, 2], "dollar", ("SELECT $2, $1", [1, 2])),
        ("SELECT :a, $b, :a", {"a": 1, "b": 2}, "dollar", ("SELECT $1, $2, $1", [1, 2])),
        ("SELECT :a, :b, :a", {"a": 1, "b": 2}, "qmark", ("SELECT ?, ?, ?", [1, 2, 1])),
        # $name is Snowflake's session variable in a qmark database, never a placeholder
        ("SELECT :a WHERE x > $limit", {"a": 1}, "qmark", ("SELECT ? WHERE x > $limit", [1])),
        ("SELECT $$ ? :a $$, ?", [1], "qmark", ("SELECT $$ ? :a $$, ?", [1])),
        ("SELECT $$ ? $$, ?", [1], "dollar", ("SELECT $$ ? $$, $1", [1])),
        ("SELECT $fn$ :a ? $fn$, :b", {"b": 2}, "dollar", ("SELECT $fn$ :a ? $fn$, $1", [2])),
        ("SELECT x::int, :x", {"x": 1}, "dollar", ("SELECT x::int, $1", [1])),
        ("SELECT ':x', \"?\", :x -- :y ?\n", {"x": 1}, "dollar", ("SELECT ':x', \"?\", $1 -- :y ?\n", [1])),
        ("SELECT /* ? */ ?", [1], "dollar", ("SELECT /* ? */ $1", [1])),
        ("SELECT $fn$ :x ? $fn$, :x", {"x": 1}, "dollar", ("SELECT $fn$ :x ? $fn$, $1", [1])),
        ("SELECT 'it''s ?', ?", [1], "dollar", ("SELECT 'it''s ?', $1", [1])),
        ("SELECT 'C:\\', ?", [1], "dollar", ("SELECT 'C:\\', $1", [1])),
        ("SELECT E'a\\' ?', ?", [1], "dollar", ("SELECT E'a\\' ?', $1", [1])),
        ("SELECT 1", None, "dollar", ("SELECT 1", None)),
    ],
)
def test_placeholders_become_the_driver_style(sql: str, params: object, style: str, expected: object) -> None:
    assert bind_params(sql, params, style) == expected  # type: ignore[arg-type]


def test_backslash_escaping_strings_are_skipped_whole() -> None:
    sql = "SELECT 'a\\' :x', :x"
    assert bind_params(sql, {"x": 1}, "qmark", backslash_escapes=True) == ("SELECT 'a\\' :x', ?", [1])


def test_mistakes_are_typed_errors() -> None:
    with pytest.raises(QueryError, match="no 'b'"):
        bind_params("SELECT :a, :b", {"a": 1}, "dollar")
    with pytest.raises(QueryError, match="not used"):
        bind_params("SELECT :a", {"a": 1, "c": 2}, "qmark")
    with pytest.raises(QueryError, match="1 \\? placeholder"):
        bind_params("SELECT ?", [1, 2], "dollar")
    with pytest.raises(ConfigurationError, match="not a str"):
        bind_params("SELECT ?", "1", "dollar")
