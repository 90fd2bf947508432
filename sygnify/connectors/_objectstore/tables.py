"""Table formats on an object store: where a table is, and whether a prefix holds one.

The connector builds a :class:`~sygnify.io.tables.TableLocation` from its own configuration
(the endpoint and credentials its Polars scans use), and :mod:`sygnify.io.tables` does the
reading and writing through ``deltalake`` or ``pyiceberg``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sygnify.connectors._objectstore.store import ObjectStore
from sygnify.errors import ConfigurationError
from sygnify.io.duckdb import looks_like_sql
from sygnify.io.files import has_glob
from sygnify.io.formats import format_of_file
from sygnify.io.tables import TableFormat, TableLocation, storage_options_of, table_format_of

__all__ = ["open_table", "table_format_at", "table_location"]

#: The folder of a Delta table's transaction log.
DELTA_LOG = "_delta_log/"


def table_location(
    store: ObjectStore[Any], target: str, polars_options: Mapping[str, Any], catalog: Any = None
) -> TableLocation:
    """The table at ``target`` of ``store`` (an Iceberg table is named in the bucket's namespace)."""
    bucket, key, _ = store.locate(target)
    return TableLocation(
        url=store.url(bucket, key.rstrip("/")),
        storage_options=storage_options_of(polars_options),
        resource=target,
        catalog=catalog,
        namespace=bucket,
    )


def table_format_at(store: ObjectStore[Any], source: str, format: str | None) -> TableFormat | None:
    """The table format a read of ``source`` names, or finds (a ``_delta_log/`` under a prefix).

    Only a prefix (no glob, no file extension, not SQL) is looked at, with one listing request.
    """
    if format is not None or looks_like_sql(source) or has_glob(source):
        return table_format_of(format, has_delta_log=False)
    bucket, key, _ = store.locate(source)
    if format_of_file(key) is not None and not key.endswith("/"):
        return None
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    first = next(iter(store.iter_objects(bucket, prefix + DELTA_LOG)), None)
    return table_format_of(None, has_delta_log=first is not None)


def open_table(
    store: ObjectStore[Any],
    source: str,
    format: str | None,
    polars_options: Callable[[], Mapping[str, Any]],
    catalog: Any,
    version: int | None,
    as_of: Any,
) -> tuple[TableFormat, TableLocation] | None:
    """The table a read of ``source`` names or finds, with its location; None for plain files.

    ``polars_options`` is called only for a table (it may resolve credentials).
    ``version``/``as_of`` on something that is not a table is a ``ConfigurationError``.
    """
    table_format = table_format_at(store, source, format)
    if table_format is None:
        if version is not None or as_of is not None:
            raise ConfigurationError(
                f"version=/as_of= read a table's history, but {source!r} is not a Delta table (no "
                "_delta_log/ under it); pass format='delta' or format='iceberg' to name the table format",
                resource=source,
            )
        return None
    return table_format, table_location(store, source, polars_options(), catalog)
