"""Table references for SQL connectors: ``[db.][schema.]table``, validated and quoted.

A user names a table the way the database does: unquoted parts follow the database's case
rule (``SqlDialect.fold``), double-quoted parts are kept as written. The parsed name keeps
the real (folded) parts, for drivers that take them separately, and a fully quoted SQL
reference, so a name can never inject SQL:

>>> from sygnify.connectors._sql.scan import SqlDialect
>>> dialect = SqlDialect(quote=quote_identifier, placeholder=lambda _n, i: f"${i + 1}", fold=str.lower)
>>> name = parse_table_name('Sales."Order Lines"', dialect)
>>> name.parts, name.sql, name.listed
(('sales', 'Order Lines'), '"sales"."Order Lines"', 'sales.Order Lines')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sygnify.connectors._sql.scan import SqlDialect
from sygnify.errors import ConfigurationError

__all__ = ["TableName", "parse_table_name", "quote_identifier"]

_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_PARTS = re.compile(r'([A-Za-z_][A-Za-z0-9_$]*)|"((?:[^"]|"")+)"')


def quote_identifier(name: str) -> str:
    """A double-quoted (standard SQL) identifier.

    >>> quote_identifier('a"b')
    '"a""b"'
    """
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableName:
    """A parsed table reference: its real ``parts`` and its quoted ``sql`` form."""

    parts: tuple[str, ...]
    sql: str

    @property
    def table(self) -> str:
        """The table's own name (the last part)."""
        return self.parts[-1]

    @property
    def schema(self) -> str | None:
        """The schema part, when the reference has one."""
        return self.parts[-2] if len(self.parts) > 1 else None

    @property
    def listed(self) -> str:
        """How ``list()`` names this table: ``schema.table`` (or ``table``), real parts joined by
        dots; a database part is dropped, as ``list()`` shows one database's tables."""
        return ".".join(self.parts[-2:])


def parse_table_name(text: str, dialect: SqlDialect, *, max_parts: int = 3) -> TableName:
    """Parse ``[db.][schema.]table``; anything else is a :class:`ConfigurationError`."""
    if not re.fullmatch(rf"\s*{_PART}(?:\s*\.\s*{_PART}){{0,{max_parts - 1}}}\s*", text):
        raise ConfigurationError(
            f"{text!r} is not a table name: use {'[db.]' if max_parts > 2 else ''}[schema.]table with "
            'plain identifiers (letters, digits, _), or double-quote a part ("My Table")',
            resource=text,
        )
    parts = [
        dialect.fold(plain) if plain else quoted.replace('""', '"') for plain, quoted in _PARTS.findall(text)
    ]
    return TableName(tuple(parts), ".".join(dialect.quote(part) for part in parts))
