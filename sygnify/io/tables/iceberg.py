"""Iceberg tables through ``pyiceberg`` with a SQL catalog: one snapshot per write.

Imported by :mod:`sygnify.io.tables` only when an Iceberg table is used; ``pyiceberg`` itself
is imported on first use (``pip install 'sygnify[iceberg]'``). The catalog is a SQLAlchemy
URL (a SQLite file by default, a PostgreSQL database to share it) or a pyiceberg ``Catalog``;
the table is named ``<namespace>.<target>`` (``/`` in the target becomes ``__``) and lives
at the target's location, so a table's data sits where the connector writes.

>>> import tempfile, pyarrow as pa
>>> from sygnify.io.tables.location import TableLocation
>>> folder = tempfile.mkdtemp()
>>> location = TableLocation(folder + "/events", resource="events/", catalog=f"sqlite:///{folder}/c.db")
>>> _ = write(pa.table({"x": [1, 2]}), location, "append", None, None, None)
>>> read(location, None, None, None).to_pylist()
[{'x': 1}, {'x': 2}]
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from sygnify.errors import ConfigurationError, NotFoundError, SchemaError
from sygnify.io.tables.location import AsOf, SchemaMode, TableLocation, check_time_travel, parse_as_of

__all__ = ["batches", "file_io_properties", "load", "read", "scan", "write"]

#: The name sygnify's SQL catalogs go by (pyiceberg keeps it in every table's catalog row).
CATALOG_NAME = "sygnify"

#: object_store setting -> pyiceberg FileIO property
_PROPERTIES = {
    "aws_endpoint_url": "s3.endpoint",
    "aws_region": "s3.region",
    "aws_access_key_id": "s3.access-key-id",
    "aws_secret_access_key": "s3.secret-access-key",
    "aws_session_token": "s3.session-token",
    "account_name": "adls.account-name",
    "account_key": "adls.account-key",
    "sas_token": "adls.sas-token",
}


def _catalog_module() -> Any:
    try:
        from pyiceberg.catalog import sql
    except ImportError as exc:
        raise ConfigurationError(
            "Iceberg tables need pyiceberg with its SQL catalog: pip install 'sygnify[iceberg]'",
            resource="pyiceberg",
        ) from exc
    return sql


def file_io_properties(storage_options: dict[str, str]) -> dict[str, str]:
    """pyiceberg FileIO properties from object_store settings (endpoint, region, keys).

    >>> file_io_properties({"aws_endpoint_url": "http://127.0.0.1:9000", "aws_region": "us-east-1"})
    {'s3.endpoint': 'http://127.0.0.1:9000', 's3.region': 'us-east-1'}
    """
    properties = {_PROPERTIES[key]: value for key, value in storage_options.items() if key in _PROPERTIES}
    if storage_options.get("aws_virtual_hosted_style_request") == "true":
        properties["s3.force-virtual-addressing"] = "true"
    endpoint = storage_options.get("endpoint")
    if endpoint and "account_name" in storage_options:  # Azurite or a private endpoint
        scheme, _, rest = endpoint.partition("://")
        properties["adls.blob-storage-scheme"] = scheme
        properties["adls.blob-storage-authority"] = rest.split("/", 1)[0]
    return properties


def _url(location: TableLocation) -> str:
    """The table's location as pyiceberg names it (``file://`` for local paths)."""
    if "://" in location.url:
        return location.url.rstrip("/")
    return Path(location.url).resolve().as_uri()


def _identifier(location: TableLocation) -> tuple[str, str]:
    name = (location.resource or location.url).strip("/")
    name = re.sub(r"[^0-9A-Za-z_]", "_", name.replace("/", "__")) or "table"
    namespace = re.sub(r"[^0-9A-Za-z_]", "_", location.namespace) or "sygnify"
    return namespace, name


def _catalog(location: TableLocation) -> Any:
    sql = _catalog_module()
    catalog = location.catalog
    if catalog is not None and not isinstance(catalog, str):
        return catalog  # a pyiceberg Catalog the user built
    if catalog is None:
        if "://" in location.url:
            raise ConfigurationError(
                "an Iceberg table on an object store needs a catalog: pass "
                "catalog='sqlite:///path/catalog.db' "
                f"(or a PostgreSQL URL, or a pyiceberg Catalog) for {location.name!r}",
                resource=location.resource,
            )
        catalog = f"sqlite:///{Path(location.url).resolve().parent / '.sygnify_iceberg.db'}"
    properties = file_io_properties(dict(location.storage_options))
    return sql.SqlCatalog(CATALOG_NAME, uri=catalog, warehouse=_url(location), **properties)


def load(location: TableLocation, *, create_with: pa.Schema | None = None) -> Any:
    """The pyiceberg ``Table`` at ``location`` (created with ``create_with`` when it does not exist)."""
    from pyiceberg.exceptions import NoSuchTableError

    catalog = _catalog(location)
    identifier = _identifier(location)
    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError as exc:
        if create_with is None:
            raise NotFoundError(
                f"no Iceberg table {'.'.join(identifier)} for {location.name!r} in the catalog; write one "
                "with write(..., format='iceberg')",
                resource=location.resource,
            ) from exc
        catalog.create_namespace_if_not_exists(identifier[0])
        return catalog.create_table(identifier, schema=create_with, location=_url(location))
    if table.location().rstrip("/") != _url(location):
        raise ConfigurationError(
            f"Iceberg table {'.'.join(identifier)} lives at {table.location()}, not at {_url(location)}",
            resource=location.resource,
        )
    return table


def _snapshot_id(table: Any, version: int | None, as_of: AsOf | None, location: TableLocation) -> int | None:
    check_time_travel(version, as_of, location)
    if version is not None:
        if table.snapshot_by_id(version) is None:
            known = [snapshot.snapshot_id for snapshot in table.snapshots()]
            raise NotFoundError(
                f"Iceberg table {location.name!r} has no snapshot {version} (its snapshots: {known})",
                resource=location.resource,
            )
        return version
    if as_of is not None:
        moment = parse_as_of(as_of, location)
        snapshot = table.snapshot_as_of_timestamp(int(moment.timestamp() * 1000))
        if snapshot is None:
            raise NotFoundError(
                f"Iceberg table {location.name!r} has no snapshot as of {moment.isoformat()}",
                resource=location.resource,
            )
        return int(snapshot.snapshot_id)
    return None


def _scan(
    location: TableLocation, version: int | None, as_of: AsOf | None, columns: Sequence[str] | None
) -> Any:
    table = load(location)
    snapshot = _snapshot_id(table, version, as_of, location)
    names = [field.name for field in table.schema().fields]
    missing = [column for column in columns or [] if column not in names]
    if missing:
        raise ConfigurationError(
            f"columns not in table {location.name!r}: {', '.join(missing)} (it has {', '.join(names)})",
            resource=location.resource,
        )
    selected = tuple(columns) if columns else ("*",)
    return table.scan(snapshot_id=snapshot, selected_fields=selected)


def read(
    location: TableLocation, version: int | None, as_of: AsOf | None, columns: Sequence[str] | None
) -> pa.Table:
    """The rows of a snapshot (the current one unless ``version``/``as_of``) as an Arrow table."""
    return _scan(location, version, as_of, columns).to_arrow()


def batches(
    location: TableLocation,
    version: int | None,
    as_of: AsOf | None,
    columns: Sequence[str] | None,
    filter: ds.Expression | None,
    batch_size: int,
) -> Iterator[pa.RecordBatch]:
    """A snapshot's rows in batches; ``columns`` pushed into the scan, ``filter`` applied per batch."""
    reader = _scan(location, version, as_of, columns).to_arrow_batch_reader()
    for batch in reader:
        piece = pa.Table.from_batches([batch])
        if filter is not None:
            piece = piece.filter(filter)
        yield from piece.to_batches(max_chunksize=batch_size)


def scan(location: TableLocation, version: int | None, as_of: AsOf | None) -> pl.LazyFrame:
    """``pl.scan_iceberg`` of a snapshot (Polars plans with pyiceberg and reads the files itself)."""
    table = load(location)
    snapshot = _snapshot_id(table, version, as_of, location)
    return pl.scan_iceberg(
        table, snapshot_id=snapshot, storage_options=dict(location.storage_options) or None
    )


def write(
    data: pa.Table,
    location: TableLocation,
    mode: str,
    partition_by: Sequence[str] | None,
    merge_on: Sequence[str] | None,
    schema_mode: SchemaMode,
) -> list[str]:
    """One snapshot of ``data`` (append, overwrite or merge); returns the new metadata file."""
    if partition_by:
        raise ConfigurationError(
            "partition_by is not supported for Iceberg writes yet; create the table with its partition "
            "spec in pyiceberg and append to it",
            resource=location.resource,
        )
    table = load(location, create_with=data.schema)
    _evolve(table, data.schema, schema_mode, location)
    try:
        if mode == "merge":
            assert merge_on
            table.upsert(data, join_cols=list(merge_on))
        elif mode == "overwrite":
            table.overwrite(data)
        else:
            table.append(data)
    except ValueError as exc:  # pyiceberg's schema compatibility check
        raise SchemaError(
            f"the data's schema does not match Iceberg table {location.name!r}: {exc}",
            resource=location.resource,
        ) from exc
    table.refresh()
    return [table.metadata_location]


def _evolve(table: Any, schema: pa.Schema, schema_mode: SchemaMode, location: TableLocation) -> None:
    current = table.schema().as_arrow()
    added = [field.name for field in schema if field.name not in current.names]
    if not added:
        return
    if schema_mode is None:
        raise SchemaError(
            f"the data has column(s) {', '.join(map(repr, added))}, which Iceberg table {location.name!r} "
            "lacks (pass schema_mode='merge' to add them)",
            resource=location.resource,
        )
    with table.update_schema() as update:
        update.union_by_name(schema)
