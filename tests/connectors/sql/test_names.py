"""Table references shared by the SQL connectors (sygnify.connectors._sql.names)."""

from __future__ import annotations

import pytest

from sygnify.connectors._sql.names import parse_table_name, quote_identifier
from sygnify.connectors._sql.scan import SqlDialect
from sygnify.errors import ConfigurationError

LOWER = SqlDialect(quote=quote_identifier, placeholder=lambda _n, i: f"${i + 1}", fold=str.lower)
UPPER = SqlDialect(quote=quote_identifier, placeholder=lambda _n, _i: "?", fold=str.upper)


def test_unquoted_parts_fold_and_quoted_parts_are_kept() -> None:
    assert parse_table_name("Orders", LOWER).parts == ("orders",)
    assert parse_table_name("Orders", UPPER).parts == ("ORDERS",)
    name = parse_table_name(' db . "My ""Sch""" .t ', UPPER)
    assert name.parts == ("DB", 'My "Sch"', "T")
    assert name.sql == '"DB"."My ""Sch"""."T"'
    assert (name.schema, name.table, name.listed) == ('My "Sch"', "T", 'My "Sch".T')


@pytest.mark.parametrize("text", ["", "a.", ".a", "a..b", "a.b.c.d", "t; DROP TABLE x", "1abc", '"unclosed'])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="not a table name"):
        parse_table_name(text, LOWER)


def test_max_parts_limits_the_depth() -> None:
    assert parse_table_name("s.t", LOWER, max_parts=2).parts == ("s", "t")
    with pytest.raises(ConfigurationError, match=r"use \[schema.\]table"):
        parse_table_name("d.s.t", LOWER, max_parts=2)
