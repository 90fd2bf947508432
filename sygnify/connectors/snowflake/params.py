"""Query parameters for Snowflake: values are bound server-side, ``:name`` is rewritten to ``?``.

>>> bind_params("SELECT * FROM t WHERE a = :a AND b = :b", {"b": 2, "a": 1})
('SELECT * FROM t WHERE a = ? AND b = ?', [1, 2])
>>> bind_params("SELECT ?", (5,))
('SELECT ?', [5])
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sygnify.connectors.base import QueryParams
from sygnify.errors import ConfigurationError, QueryError

__all__ = ["bind_params", "named_to_qmark"]

#: Strings, quoted identifiers, comments and $$-blocks, skipped when looking for :name.
_SKIP = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\$\$.*?\$\$", re.S)
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


def named_to_qmark(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """Rewrite ``:name`` placeholders to ``?`` (server-side binding) and order the values.

    Strings, quoted identifiers, comments and ``::`` casts are left alone:

    >>> named_to_qmark("SELECT ':x', a::int FROM t WHERE a = :x OR b = :y OR c = :x", {"x": 1, "y": 2})
    ("SELECT ':x', a::int FROM t WHERE a = ? OR b = ? OR c = ?", [1, 2, 1])
    """
    values: list[Any] = []
    used: set[str] = set()

    def rewrite(segment: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in params:
                raise QueryError(f"the SQL uses :{name}, but params has no {name!r}", resource=name)
            used.add(name)
            values.append(params[name])
            return "?"

        return _NAMED.sub(replace, segment)

    out: list[str] = []
    position = 0
    for skipped in _SKIP.finditer(sql):
        out.append(rewrite(sql[position : skipped.start()]))
        out.append(skipped.group(0))
        position = skipped.end()
    out.append(rewrite(sql[position:]))
    unused = sorted(set(params) - used)
    if unused:
        raise QueryError(f"params {', '.join(unused)} are not used in the SQL", resource=unused[0])
    return "".join(out), values


def bind_params(sql: str, params: QueryParams) -> tuple[str, list[Any] | None]:
    """The SQL and the values for ``cursor.execute``: ``?`` with a sequence, ``:name`` with a mapping."""
    if params is None:
        return sql, None
    if isinstance(params, Mapping):
        return named_to_qmark(sql, params)
    if isinstance(params, str | bytes):
        raise ConfigurationError("params must be a sequence (for ?) or a mapping (for :name), not a str")
    return sql, list(params)
