"""Delta Lake tables through ``deltalake`` (delta-rs): one commit per write, time travel.

Imported by :mod:`sygnify.io.tables` only when a Delta table is used; ``deltalake`` itself
is imported on first use (``pip install 'sygnify[delta]'``).

>>> import tempfile, pyarrow as pa
>>> from sygnify.io.tables.location import TableLocation
>>> location = TableLocation(tempfile.mkdtemp(), resource="t/")
>>> write(pa.table({"x": [1]}), location, "append", None, None, None)[0].rsplit("/", 1)[-1]
'00000000000000000000.json'
>>> dataset(location, None, None).to_table().to_pylist()
[{'x': 1}]
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from sygnify.errors import ConfigurationError, NotFoundError, SchemaError
from sygnify.io.tables.location import AsOf, SchemaMode, TableLocation, check_time_travel, parse_as_of

__all__ = ["dataset", "load", "scan", "write"]


def _deltalake() -> Any:
    try:
        import deltalake
    except ImportError as exc:
        raise ConfigurationError(
            "Delta Lake tables need the deltalake package: pip install 'sygnify[delta]'", resource="deltalake"
        ) from exc
    return deltalake


def _options(location: TableLocation) -> dict[str, str] | None:
    return dict(location.storage_options) or None


def load(location: TableLocation, version: int | None = None, as_of: AsOf | None = None) -> Any:
    """The ``DeltaTable`` at ``location`` (at ``version`` or ``as_of``, else the latest)."""
    check_time_travel(version, as_of, location)
    deltalake = _deltalake()
    exceptions = deltalake.exceptions
    try:
        table = deltalake.DeltaTable(location.url, storage_options=_options(location))
    except exceptions.TableNotFoundError as exc:
        raise NotFoundError(
            f"no Delta table at {location.name!r} (no _delta_log/ there); write one with "
            "write(..., format='delta')",
            resource=location.resource,
        ) from exc
    if version is None and as_of is None:
        return table
    latest = table.version()
    if version is not None:
        if version > latest:
            raise NotFoundError(
                f"Delta table {location.name!r} has no version {version} (versions 0 to {latest})",
                resource=location.resource,
            )
        point: int | datetime = version
    else:
        assert as_of is not None
        moment = parse_as_of(as_of, location)
        first = min(int(entry["timestamp"]) for entry in table.history() if "timestamp" in entry)
        if moment.timestamp() * 1000 < first:
            raise NotFoundError(
                f"Delta table {location.name!r} has no version as of {moment.isoformat()}: its first "
                f"commit is later ({datetime.fromtimestamp(first / 1000, tz=moment.tzinfo).isoformat()})",
                resource=location.resource,
            )
        point = moment
    try:
        table.load_as_version(point)
    except (exceptions.DeltaError, ValueError, OSError) as exc:
        raise NotFoundError(
            f"Delta table {location.name!r} has no version {point!r} (latest is {latest}; "
            f"old versions may have been vacuumed, and as_of before the first commit names none): {exc}",
            resource=location.resource,
        ) from exc
    return table


def dataset(location: TableLocation, version: int | None, as_of: AsOf | None) -> ds.Dataset:
    """The table's Parquet files as a pyarrow dataset (partition values from the log)."""
    return load(location, version, as_of).to_pyarrow_dataset()


def scan(location: TableLocation, version: int | None, as_of: AsOf | None) -> pl.LazyFrame:
    """``pl.scan_delta`` of the table: Polars reads the log and the files itself."""
    table = load(location, version, as_of)  # checks the table and the version, with sygnify's errors
    # The loaded table is handed over, so Polars does not read the log again; its storage
    # options are the table's plus Polars' own retry bounds.
    return pl.scan_delta(table, storage_options=dict(location.polars_options) or None)


def write(
    data: pa.Table,
    location: TableLocation,
    mode: str,
    partition_by: Sequence[str] | None,
    merge_on: Sequence[str] | None,
    schema_mode: SchemaMode,
    transaction: tuple[str, int] | None = None,
) -> list[str]:
    """One commit of ``data`` (append, overwrite or merge); returns the commit's log file.

    ``transaction=(app_id, version)`` records an application transaction in the same commit
    (Delta's ``txn`` action, the protocol's idempotent-writer mechanism): a write whose
    ``version`` is not above the table's recorded one for ``app_id`` was committed already
    and is skipped (returns ``[]``), so a writer retrying after a crash adds nothing twice.
    """
    deltalake = _deltalake()
    exceptions = deltalake.exceptions
    options = _options(location)
    commit = None
    if transaction is not None:
        from deltalake.transaction import CommitProperties, Transaction

        commit = CommitProperties(
            app_transactions=[Transaction(app_id=transaction[0], version=transaction[1])]
        )
    missing = [column for column in partition_by or [] if column not in data.column_names]
    if missing:
        raise SchemaError(
            f"partition columns not in the data: {', '.join(missing)}", resource=location.resource
        )
    # The log is read once: the loaded table is checked, then written through (it learns its new version).
    try:
        table: Any = deltalake.DeltaTable(location.url, storage_options=options)
    except exceptions.TableNotFoundError:
        table = None
    if transaction is not None and table is not None:
        done = table.transaction_version(transaction[0])
        if done is not None and done >= transaction[1]:
            return []  # committed before (a retry after a crash): nothing to add
    try:
        if mode == "merge" and table is not None:
            assert merge_on
            _check_merge_schema(table, data, schema_mode, location)
            predicate = " AND ".join(f"t.{_quoted(column)} = s.{_quoted(column)}" for column in merge_on)
            (
                table.merge(
                    data,
                    predicate=predicate,
                    source_alias="s",
                    target_alias="t",
                    merge_schema=schema_mode == "merge",
                    commit_properties=commit,
                )
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
        else:
            if table is not None and not (mode == "overwrite" and schema_mode == "overwrite"):
                _check_merge_schema(table, data, schema_mode, location)
                if partition_by:
                    _check_partitions(table, partition_by, location)
            deltalake.write_deltalake(
                table if table is not None else location.url,
                data,
                mode="overwrite" if mode == "overwrite" else "append",
                partition_by=list(partition_by) if partition_by else None,
                schema_mode=schema_mode,
                storage_options=options if table is None else None,
                commit_properties=commit,
            )
    except exceptions.SchemaMismatchError as exc:
        raise SchemaError(
            f"the data's schema does not match Delta table {location.name!r}: {exc} (pass "
            "schema_mode='merge' to add new columns, or mode='overwrite' with schema_mode='overwrite' "
            "to replace the schema)",
            resource=location.resource,
        ) from exc
    if table is None:
        version = 0
    else:
        table.update_incremental()
        version = table.version()
    return [f"{location.name.rstrip('/')}/_delta_log/{version:020d}.json"]


def _quoted(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def _check_partitions(table: Any, partition_by: Sequence[str], location: TableLocation) -> None:
    current = list(table.metadata().partition_columns)
    if current != list(partition_by):
        raise ConfigurationError(
            f"Delta table {location.name!r} is partitioned by {current}, not {list(partition_by)}",
            resource=location.resource,
        )


def _check_merge_schema(table: Any, data: pa.Table, schema_mode: SchemaMode, location: TableLocation) -> None:
    """Data that adds columns is a SchemaError unless ``schema_mode='merge'``; retyped ones always are."""
    current = pa.schema(table.schema().to_arrow())
    for field in data.schema:
        if field.name not in current.names:
            if schema_mode != "merge":
                raise SchemaError(
                    f"the data has column {field.name!r}, which Delta table {location.name!r} lacks "
                    "(pass schema_mode='merge' to add it)",
                    resource=location.resource,
                )
            continue
        have = current.field(field.name).type
        if not _same_type(have, field.type):
            raise SchemaError(
                f"column {field.name!r} is {field.type} in the data but {have} in Delta table "
                f"{location.name!r}",
                resource=location.resource,
            )


def _same_type(left: pa.DataType, right: pa.DataType) -> bool:
    # Delta stores strings and binaries as one type; Arrow has small and large variants.
    # Narrower numbers are written into wider columns (deltalake casts them safely).
    if pa.types.is_integer(right) and (pa.types.is_integer(left) or pa.types.is_floating(left)):
        return pa.types.is_floating(left) or bool(left.bit_width >= right.bit_width)
    if pa.types.is_floating(right) and pa.types.is_floating(left):
        return bool(left.bit_width >= right.bit_width)

    def normal(kind: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            return pa.string()
        if pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind):
            return pa.binary()
        return kind

    return bool(normal(left) == normal(right))
