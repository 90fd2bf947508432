"""The one answer to "is this source SQL or a name?", for every connector that takes both.

A source is SQL when, after leading whitespace and SQL comments (``-- ...`` lines and
``/* ... */`` blocks), it starts with ``(`` or with a statement keyword followed by
whitespace, ``(`` or ``*``: ``SELECT``, ``WITH``, ``FROM`` (DuckDB's FROM-first queries),
``VALUES``, ``TABLE``, ``SHOW``, ``DESCRIBE``/``DESC``, ``EXPLAIN``. A dialect adds its own
keywords with ``dialect_keywords`` (DuckDB: ``PIVOT``, ``UNPIVOT``, ``SUMMARIZE``).

Anything else is a name (a path, a glob, a table). Requiring the keyword to be followed by
a space keeps names that merely begin with one (``selections/``, ``show.parquet``,
``desc_table``) names, and a keyword followed by one bare word with a data file's extension
and nothing else (``select x.parquet``, ``from 2026/*.csv``) is a file's name, not a
statement::

    >>> looks_like_sql("  -- daily\\n SELECT * FROM t"), looks_like_sql("(select 1)")
    (True, True)
    >>> looks_like_sql("show.parquet"), looks_like_sql("selections/*.csv"), looks_like_sql("db.tx")
    (False, False, False)
    >>> looks_like_sql("PIVOT t ON k", dialect_keywords=("pivot",))
    True
    >>> looks_like_sql("select x.parquet"), looks_like_sql("FROM 'x.parquet'"), looks_like_sql("FROM tx")
    (False, True, True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from sygnify.io.formats import format_of_file

__all__ = ["SQL_KEYWORDS", "QueryParams", "looks_like_sql"]

#: Query parameters: positional (``?``) values or named (``$name``/``@name``/``:name``) ones.
QueryParams: TypeAlias = Sequence[Any] | Mapping[str, Any] | None

#: The statement keywords that start SQL in every dialect sygnify speaks.
SQL_KEYWORDS = ("select", "with", "from", "values", "table", "show", "describe", "desc", "explain")

_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.S)
_FIRST_WORD = re.compile(r"([A-Za-z_]+)(?=[\s(*])")
# A keyword, blanks, then one bare word (no quote, parenthesis, comma or semicolon): a
# file's name such as "select x.parquet" when the word has a data file's extension.
_ONE_WORD = re.compile(r"[A-Za-z_]+\s+([^\s'\"(),;]+)\s*\Z")


def looks_like_sql(text: str, *, dialect_keywords: Iterable[str] = ()) -> bool:
    """Whether ``text`` is a SQL statement rather than a name (see the module docstring)."""
    body = _LEADING_COMMENTS.sub("", text, count=1)
    if body.startswith("("):
        return True
    word = _FIRST_WORD.match(body)
    if word is None:
        return False
    one_word = _ONE_WORD.match(body)
    if one_word is not None and format_of_file(one_word.group(1)) is not None:
        return False
    keyword = word.group(1).lower()
    return keyword in SQL_KEYWORDS or keyword in {extra.lower() for extra in dialect_keywords}
