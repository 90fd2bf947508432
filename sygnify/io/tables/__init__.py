"""Table formats (Delta Lake, Iceberg) under a location: writes, reads and time travel.

A table format keeps a transaction log next to its Parquet files, so every write is one
atomic commit (readers see all of it or nothing), and every past version stays readable.
Connectors hand this package a :class:`TableLocation` (the table's URL and the credentials
of their own configuration) and it does the rest through the format's own library:
``deltalake`` (delta-rs, ``pip install 'sygnify[delta]'``) or ``pyiceberg`` with a SQL
catalog (``pip install 'sygnify[iceberg]'``). Both are imported only when a table is used.

>>> import tempfile, pyarrow as pa
>>> location = TableLocation(tempfile.mkdtemp() + "/events", resource="events/")
>>> first = write_table_format(pa.table({"id": [1, 2], "v": ["a", "b"]}), location, format="delta")
>>> _ = write_table_format(pa.table({"id": [2, 3], "v": ["B", "c"]}), location, format="delta",
...                        mode="merge", merge_on=["id"])
>>> table_dataset(location, "delta").to_table().sort_by("id").to_pylist()
[{'id': 1, 'v': 'a'}, {'id': 2, 'v': 'B'}, {'id': 3, 'v': 'c'}]
>>> table_dataset(location, "delta", version=0).count_rows()
2
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from sygnify.errors import ConfigurationError
from sygnify.io.tables import delta, iceberg
from sygnify.io.tables.location import (
    TABLE_FORMATS,
    TABLE_WRITE_MODES,
    AsOf,
    SchemaMode,
    TableFormat,
    TableLocation,
)

__all__ = [
    "TABLE_FORMATS",
    "AsOf",
    "SchemaMode",
    "TableFormat",
    "TableLocation",
    "check_no_file_options",
    "polars_only_options",
    "is_table_write",
    "storage_options_of",
    "table_batches",
    "table_dataset",
    "table_format_of",
    "table_scan",
    "write_table_format",
]


#: Polars-only ``storage_options`` (its retry bounds): not object_store settings deltalake knows.
POLARS_ONLY = ("max_retries", "retry_")


def storage_options_of(polars_options: Mapping[str, Any]) -> dict[str, str]:
    """object_store settings from a connector's Polars scan options, credentials resolved.

    Polars takes a ``credential_provider`` (called whenever it needs credentials);
    deltalake and pyiceberg take plain string keys, so the provider is called once here,
    and Polars' own retry settings are left out.

    >>> storage_options_of({"storage_options": {"aws_region": "eu-west-1", "max_retries": 3},
    ...                     "credential_provider": lambda: ({"aws_access_key_id": "k"}, None)})
    {'aws_region': 'eu-west-1', 'aws_access_key_id': 'k'}
    """
    options = {
        key: str(value)
        for key, value in (polars_options.get("storage_options") or {}).items()
        if not key.startswith(POLARS_ONLY)
    }
    provider = polars_options.get("credential_provider")
    if callable(provider):
        credentials, _expiry = provider()
        options.update({key: str(value) for key, value in credentials.items() if value})
    return options


def polars_only_options(polars_options: Mapping[str, Any]) -> dict[str, Any]:
    """The Polars-only settings (retry bounds) of a connector's Polars scan options.

    >>> polars_only_options({"storage_options": {"aws_region": "eu-west-1", "max_retries": 3}})
    {'max_retries': 3}
    """
    storage = polars_options.get("storage_options") or {}
    return {key: value for key, value in storage.items() if key.startswith(POLARS_ONLY)}


def is_table_write(format: str | None, mode: str) -> bool:
    """Whether a write goes to a table format (``format="delta"|"iceberg"`` or ``mode="merge"``).

    >>> is_table_write("delta", "append"), is_table_write(None, "merge"), is_table_write("parquet", "append")
    (True, True, False)
    """
    return format in TABLE_FORMATS or mode == "merge"


def table_format_of(format: str | None, *, has_delta_log: bool) -> TableFormat | None:
    """The table format a read names (``format=``) or finds (a ``_delta_log/`` under the source).

    >>> table_format_of(None, has_delta_log=True), table_format_of("parquet", has_delta_log=False)
    ('delta', None)
    """
    if format == "delta":
        return "delta"
    if format == "iceberg":
        return "iceberg"
    if format is None and has_delta_log:
        return "delta"
    return None


def _check_format(format: str | None, mode: str, resource: str | None) -> TableFormat:
    if mode not in TABLE_WRITE_MODES:
        raise ConfigurationError(
            f"mode must be 'append', 'overwrite' or 'merge', got {mode!r}", resource=resource
        )
    if format is None:
        raise ConfigurationError(
            "mode='merge', merge_on and schema_mode apply to table formats: pass format='delta' or "
            "format='iceberg'",
            resource=resource,
        )
    if format not in TABLE_FORMATS:
        raise ConfigurationError(
            f"mode={mode!r} needs a table format (format='delta' or 'iceberg'), got format={format!r}",
            resource=resource,
        )
    return "delta" if format == "delta" else "iceberg"


def write_table_format(
    table: pa.Table,
    location: TableLocation,
    *,
    format: str | None,
    mode: str = "append",
    partition_by: Sequence[str] | None = None,
    merge_on: Sequence[str] | None = None,
    schema_mode: SchemaMode = None,
    transaction: tuple[str, int] | None = None,
) -> list[str]:
    """Write ``table`` to the table at ``location`` in one commit; returns what the commit wrote.

    ``transaction=(app_id, version)`` (Delta only) makes the write idempotent: it records
    the application transaction in the same commit, and a version the table already holds
    for ``app_id`` is skipped.

    ``mode``: ``append`` adds rows, ``overwrite`` replaces them (the old version stays
    readable by time travel), ``merge`` upserts by the ``merge_on`` key columns (matched
    rows updated, the others inserted). A table that does not exist is created with the
    data's schema (and ``partition_by`` columns). A new or retyped column is a
    ``SchemaError`` unless ``schema_mode`` allows it. See the module docstring for an example.
    """
    fmt = _check_format(format, mode, location.resource)
    if mode == "merge" and not merge_on:
        raise ConfigurationError(
            "mode='merge' needs the key columns to match rows on: merge_on=['id']", resource=location.resource
        )
    if merge_on:
        if mode != "merge":
            raise ConfigurationError("merge_on applies to mode='merge' only", resource=location.resource)
        missing = [column for column in merge_on if column not in table.column_names]
        if missing:
            raise ConfigurationError(
                f"merge_on columns not in the data: {', '.join(missing)}", resource=location.resource
            )
    if schema_mode not in (None, "merge", "overwrite"):
        raise ConfigurationError(
            f"schema_mode must be None, 'merge' or 'overwrite', got {schema_mode!r}",
            resource=location.resource,
        )
    if fmt == "delta":
        return delta.write(table, location, mode, partition_by, merge_on, schema_mode, transaction)
    if transaction is not None:
        raise ConfigurationError(
            "transaction= (idempotent writes by application version) is a Delta feature; Iceberg "
            "tables take a merge_on= upsert instead",
            resource=location.resource,
        )
    return iceberg.write(table, location, mode, partition_by, merge_on, schema_mode)


def check_no_file_options(resource: str | None, **options: Any) -> None:
    """Refuse write options that shape plain files (``write_id``, ``compression``...) in a table write.

    >>> check_no_file_options("t/", write_id=None, compression=None)
    """
    given = sorted(name for name, value in options.items() if value is not None)
    if given:
        raise ConfigurationError(
            f"{', '.join(given)} apply to file datasets, not to Delta/Iceberg tables (a table's commits "
            "are atomic already; the format's library picks the file layout)",
            resource=resource,
        )


def table_dataset(
    location: TableLocation, format: TableFormat, *, version: int | None = None, as_of: AsOf | None = None
) -> ds.Dataset:
    """A :class:`pyarrow.dataset.Dataset` of the table (at ``version`` or ``as_of``, else the latest).

    Delta gives a dataset over its Parquet files (columns and filters pushed down); Iceberg
    gives the snapshot's rows read through pyiceberg (deletes applied) as an in-memory dataset.
    """
    if format == "delta":
        return delta.dataset(location, version, as_of)
    return ds.dataset(iceberg.read(location, version, as_of, None))


def table_batches(
    location: TableLocation,
    format: TableFormat,
    *,
    columns: Sequence[str] | None = None,
    filter: ds.Expression | None = None,
    batch_size: int,
    version: int | None = None,
    as_of: AsOf | None = None,
) -> Iterator[pa.RecordBatch]:
    """The table's rows in batches of at most ``batch_size`` (``columns``/``filter`` pushed down)."""
    if format == "delta":
        dataset = delta.dataset(location, version, as_of)
        _check_columns(dataset.schema, columns, location)
        return iter(
            dataset.to_batches(
                columns=list(columns) if columns else None, filter=filter, batch_size=batch_size
            )
        )
    return iceberg.batches(location, version, as_of, columns, filter, batch_size)


def table_scan(
    location: TableLocation, format: TableFormat, *, version: int | None = None, as_of: AsOf | None = None
) -> pl.LazyFrame:
    """A Polars ``LazyFrame`` of the table: ``pl.scan_delta`` / ``pl.scan_iceberg`` (native pushdown)."""
    if format == "delta":
        return delta.scan(location, version, as_of)
    return iceberg.scan(location, version, as_of)


def _check_columns(schema: pa.Schema, columns: Sequence[str] | None, location: TableLocation) -> None:
    missing = [column for column in columns or [] if column not in schema.names]
    if missing:
        raise ConfigurationError(
            f"columns not in table {location.name!r}: {', '.join(missing)} "
            f"(it has {', '.join(schema.names)})",
            resource=location.resource,
        )
