"""Table formats under the local connector's root: where a table is, and whether a folder holds one.

An Iceberg table's catalog defaults to the SQLite file ``.sygnify_iceberg.db`` at the root
(hidden, so listings and globs skip it); :mod:`sygnify.io.tables` does the reading and
writing through ``deltalake`` or ``pyiceberg``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sygnify.connectors.local.paths import resolve_under
from sygnify.errors import ConfigurationError
from sygnify.io.duckdb import looks_like_sql
from sygnify.io.files import has_glob
from sygnify.io.tables import TableFormat, TableLocation, table_format_of

__all__ = ["ICEBERG_CATALOG", "local_table", "local_table_location"]

#: The default Iceberg catalog (a SQLite file) of a local root.
ICEBERG_CATALOG = ".sygnify_iceberg.db"


def local_table_location(root: Path, target: str, catalog: Any = None) -> TableLocation:
    """The table at ``target`` under ``root`` (confined to it, like every local path)."""
    path = resolve_under(root, target)
    return TableLocation(
        url=str(path),
        resource=target,
        catalog=catalog if catalog is not None else f"sqlite:///{root / ICEBERG_CATALOG}",
        namespace="local",
    )


def local_table(
    root: Path, source: str, format: str | None, catalog: Any, version: int | None, as_of: Any
) -> tuple[TableFormat, TableLocation] | None:
    """The table a read of ``source`` names (``format=``) or finds (a ``_delta_log/`` folder).

    ``version``/``as_of`` on something that is not a table is a ``ConfigurationError``.
    """
    table_format: TableFormat | None = None
    if format is not None or looks_like_sql(source) or has_glob(source):
        table_format = table_format_of(format, has_delta_log=False)
    else:
        table_format = table_format_of(
            None, has_delta_log=(resolve_under(root, source) / "_delta_log").is_dir()
        )
    if table_format is None:
        if version is not None or as_of is not None:
            raise ConfigurationError(
                f"version=/as_of= read a table's history, but {source!r} is not a Delta table (no "
                "_delta_log/ in it); pass format='delta' or format='iceberg' to name the table format",
                resource=source,
            )
        return None
    return table_format, local_table_location(root, source, catalog)
