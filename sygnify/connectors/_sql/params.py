"""Query parameters for SQL connectors: one user-facing syntax, rewritten to the driver's style.

Users write ``?`` with a sequence, or ``:name`` with a mapping, whatever the database
(``$name`` too where the driver binds ``$1`` placeholders: PostgreSQL). :func:`bind_params`
rewrites the placeholders into the style the driver binds (``?`` for qmark drivers,
``$1, $2`` for PostgreSQL) and orders the values; values are
always bound by the driver and never formatted into the SQL text. Strings, quoted
identifiers, comments, dollar-quoted bodies and ``::`` casts are left alone:

>>> bind_params("SELECT * FROM t WHERE a = :a AND b = $b OR c = :a", {"b": 2, "a": 1}, "dollar")
('SELECT * FROM t WHERE a = $1 AND b = $2 OR c = $1', [1, 2])
>>> bind_params("SELECT '?', x::int FROM t WHERE x = ? AND y = ?", [5, 6], "dollar")
("SELECT '?', x::int FROM t WHERE x = $1 AND y = $2", [5, 6])
>>> bind_params("SELECT * FROM t WHERE a = :a OR b = :a", {"a": 1}, "qmark")
('SELECT * FROM t WHERE a = ? OR b = ?', [1, 1])
>>> bind_params("SELECT $$ it's ? $$, ? WHERE x > $threshold", [7], "qmark")  # Snowflake
("SELECT $$ it's ? $$, ? WHERE x > $threshold", [7])
>>> bind_params("SELECT $$ ? $$, $body$ :no $body$, ?", [1], "dollar")
('SELECT $$ ? $$, $body$ :no $body$, $1', [1])
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from sygnify.connectors.base import QueryParams
from sygnify.errors import ConfigurationError, QueryError

__all__ = ["ParamStyle", "bind_params"]

#: ``qmark``: the driver binds ``?``; ``dollar``: the driver binds ``$1, $2, ...`` (PostgreSQL).
ParamStyle: TypeAlias = Literal["qmark", "dollar"]

# The tag group always takes part (empty for $$...$$): a back-reference to a group that did
# not take part never matches in Python, which would leave $$-quoted bodies unskipped.
_QUOTED = r"\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\$([A-Za-z_][A-Za-z0-9_]*|)\$.*?\$\1\$"
#: Strings (standard SQL: '' is the only escape; E'...' also knows backslashes), quoted
#: identifiers, comments and $tag$-quoted bodies: never searched for placeholders.
_SKIP = re.compile(rf"[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|{_QUOTED}", re.S)
#: The same where every string takes backslash escapes (Snowflake, MySQL).
_SKIP_BACKSLASH = re.compile(rf"'(?:[^'\\]|\\.|'')*'|{_QUOTED}", re.S)
#: ``:name`` everywhere; ``$name`` only where the driver binds ``$n`` (PostgreSQL): in a
#: qmark database ``$name`` is the database's own (Snowflake session variables).
_COLON_NAMED = r"(?<![:\w$]):([A-Za-z_][A-Za-z0-9_]*)"
_NAMED = {
    "qmark": re.compile(_COLON_NAMED),
    "dollar": re.compile(_COLON_NAMED + r"|(?<![\w$])\$([A-Za-z_][A-Za-z0-9_]*)(?!\$)"),
}
_NUMBERED = re.compile(r"(?<![\w$])\$[0-9]+")
_QMARK = re.compile(r"\?")


def _segments(sql: str, backslash_escapes: bool) -> list[tuple[bool, str]]:
    """``sql`` cut into (searchable, text) pieces; quoted and commented pieces are not searchable."""
    skip = _SKIP_BACKSLASH if backslash_escapes else _SKIP
    pieces: list[tuple[bool, str]] = []
    position = 0
    for match in skip.finditer(sql):
        pieces += [(True, sql[position : match.start()]), (False, match.group(0))]
        position = match.end()
    pieces.append((True, sql[position:]))
    return pieces


def _bind_named(
    pieces: list[tuple[bool, str]], params: Mapping[str, Any], style: ParamStyle
) -> tuple[str, list[Any]]:
    values: list[Any] = []
    numbers: dict[str, int] = {}
    used: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in params:
            raise QueryError(
                f"the SQL uses {match.group(0)}, but params has no {name!r}; add it to params", resource=name
            )
        used.add(name)
        if style == "qmark":
            values.append(params[name])
            return "?"
        if name not in numbers:
            values.append(params[name])
            numbers[name] = len(values)
        return f"${numbers[name]}"

    named = _NAMED[style]
    sql = "".join(named.sub(replace, text) if searchable else text for searchable, text in pieces)
    unused = sorted(set(params) - used)
    if unused:
        raise QueryError(
            f"params {', '.join(unused)} are not used in the SQL; remove them or add :{unused[0]}",
            resource=unused[0],
        )
    return sql, values


def _qmarks_to_dollars(pieces: list[tuple[bool, str]], values: list[Any]) -> str:
    if any(_NUMBERED.search(text) for searchable, text in pieces if searchable):
        return "".join(text for _, text in pieces)  # already $1-style: the driver binds as is
    count = 0

    def replace(_match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    sql = "".join(_QMARK.sub(replace, text) if searchable else text for searchable, text in pieces)
    if count != len(values):
        raise QueryError(
            f"the SQL has {count} ? placeholder(s) but params has {len(values)} value(s); "
            "give one value per ?",
            resource="params",
        )
    return sql


def bind_params(
    sql: str, params: QueryParams, style: ParamStyle, *, backslash_escapes: bool = False
) -> tuple[str, list[Any] | None]:
    """The SQL in the driver's placeholder ``style`` and the values to bind, in order.

    A sequence goes with ``?`` placeholders (or the driver's own ``$1`` ones, passed through
    as they are: use those where a PostgreSQL ``?`` operator must stay); a mapping goes
    with ``:name`` or ``$name``. ``backslash_escapes``: the database reads ``\\'`` inside
    any string as a quote (Snowflake), not only in ``E'...'`` strings (standard SQL).
    """
    if params is None:
        return sql, None
    if isinstance(params, str | bytes):
        raise ConfigurationError(
            "params must be a sequence (for ?) or a mapping (for :name), not a str", resource="params"
        )
    pieces = _segments(sql, backslash_escapes)
    if isinstance(params, Mapping):
        return _bind_named(pieces, params, style)
    values = list(params)
    if style == "qmark":
        return sql, values
    return _qmarks_to_dollars(pieces, values), values
