"""The dataset half of an object-store connector: read, stream, scan, query and write tables.

:class:`ObjectStoreConnector` adds Arrow/Polars/DuckDB on top of the object operations of
:class:`~sygnify.connectors._objectstore.store.ObjectStore`. A source (an object, a prefix read
with hive partitions, or a glob) is listed once through the SDK, with retries
(:mod:`sygnify.connectors._objectstore.sources`); the listing is handed to pyarrow as fragments
with their sizes, so reading needs no further listing or HEAD requests. Where a store's own
Arrow filesystem cannot be used, :class:`ObjectStoreFileSystem`
(:mod:`sygnify.connectors._objectstore.filesystem`) reads objects through the connector's SDK
instead.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from sygnify.connectors._objectstore.arrow_errors import translate_arrow_error
from sygnify.connectors._objectstore.data_reads import resumable_batches
from sygnify.connectors._objectstore.filesystem import ObjectStoreFileSystem
from sygnify.connectors._objectstore.sources import (
    Partitions,
    ResolvedSource,
    hive_partitions,
    resolve_source,
)
from sygnify.connectors._objectstore.store import ConfigT, ObjectStore
from sygnify.connectors._objectstore.tables import open_table, table_location
from sygnify.connectors._objectstore.writes import write_to_store
from sygnify.connectors.base import Capability, QueryParams, WriteMode, WriteResult
from sygnify.connectors.pool import ClientPool
from sygnify.errors import ConfigurationError, SygnifyError
from sygnify.io.arrow import DEFAULT_BATCH_SIZE, rebatch, to_arrow_table
from sygnify.io.duckdb import DatasetSQL, looks_like_sql
from sygnify.io.formats import (
    FileFormat,
    WriteOptions,
    polars_scan,
    pyarrow_format,
)
from sygnify.io.partitions import (
    HiveSchema,
    partition_schema,
    pinned_hive_types,
    read_partitions_file,
)
from sygnify.io.scan_options import ScanOptions
from sygnify.io.schemas import SchemaDrift, check_columns, dataset_schema, drift_mode, polars_drift_scan
from sygnify.io.tables import (
    AsOf,
    SchemaMode,
    check_no_file_options,
    is_table_write,
    table_batches,
    table_dataset,
    table_scan,
    write_table_format,
)
from sygnify.io.untrusted import check_files

# The Arrow filesystem over the SDK and hive partitioning live in private modules; their
# public names are re-exported here, next to the connector that uses them.
__all__ = ["ObjectStoreConnector", "ObjectStoreFileSystem", "hive_partitions"]


class ObjectStoreConnector(ObjectStore[ConfigT]):
    """An object store with datasets: ``dataset``, ``stream``, ``scan``, ``query``, ``write``."""

    capabilities = frozenset(
        {Capability.READABLE, Capability.QUERYABLE, Capability.WRITABLE, Capability.CATALOG}
    )

    def __init__(self, config: ConfigT, *, name: str | None = None, pool: ClientPool | None = None):
        super().__init__(config, name=name, pool=pool)
        self._sql = DatasetSQL(config.tables, self._sql_dataset, threads=config.duckdb_threads)
        self._fs_lock = threading.Lock()
        self._sdk_fs: pafs.FileSystem | None = None

    @abc.abstractmethod
    def _arrow_filesystem(self) -> pafs.FileSystem:
        """A pyarrow filesystem for this account (paths are ``bucket/key``)."""

    @abc.abstractmethod
    def _polars_options(self) -> dict[str, Any]:
        """Keyword arguments for Polars cloud scans (``storage_options``, ``credential_provider``)."""

    # -- datasets -----------------------------------------------------------------------------

    def filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem of this connection (paths are ``bucket/key``), built once."""
        with self._fs_lock:
            return self._arrow_filesystem()

    def _sdk_filesystem(self) -> pafs.FileSystem:
        """A read-only Arrow filesystem over this connection's SDK calls (:class:`ObjectStoreFileSystem`)."""
        if self._sdk_fs is None:
            self._sdk_fs = pafs.PyFileSystem(ObjectStoreFileSystem(self))
        return self._sdk_fs

    def dataset(
        self,
        source: str,
        *,
        format: str | None = None,
        hive_schema: HiveSchema | None = None,
        union_by_name: bool = False,
        allow_missing_columns: bool = False,
        version: int | None = None,
        as_of: AsOf | None = None,
        catalog: Any = None,
    ) -> ds.Dataset:
        """A :class:`pyarrow.dataset.Dataset` over an object, prefix, glob or table.

        Listing happens once, through the SDK (with retries); object sizes are handed to
        pyarrow so reading needs no extra round trips. Directory sources get hive partitions,
        typed by ``hive_schema`` (a schema or a mapping of column to type), else by the
        types the writer stored, else inferred (:mod:`sygnify.io.partitions`). Every
        object's schema (its footer) is read: objects whose schemas differ are a
        ``SchemaError`` naming the object and column, unless ``union_by_name`` (the union of
        the columns, missing ones null) or ``allow_missing_columns`` (objects may lack
        columns of the first) says how to read them (:mod:`sygnify.io.schemas`).

        A Delta table (``format="delta"``, or a prefix with a ``_delta_log/``) or an Iceberg
        table (``format="iceberg"``, named in ``catalog``) is read at its latest version,
        or at ``version`` / ``as_of`` (a datetime or ISO string) (:mod:`sygnify.io.tables`).
        """
        drift = drift_mode(union_by_name=union_by_name, allow_missing_columns=allow_missing_columns)

        def open_any() -> ds.Dataset:
            # One operation (one outcome on the breaker): the table probe, then the dataset.
            table = open_table(self, source, format, self._polars_options, catalog, version, as_of)
            if table is not None:
                return table_dataset(table[1], table[0], version=version, as_of=as_of)
            return self._open_dataset(source, format, hive_schema, drift)

        return self._call("open dataset", open_any, resource=source)

    def _stored_partitions(self, resolved: ResolvedSource) -> pa.Schema | None:
        """The partition types a sygnify write stored at the root of a directory source."""
        info = resolved.partitions_file
        if info is None:
            return None
        return read_partitions_file(self.get_range(resolved.bucket, info.key, 0, None, operation="open"))

    def _open_dataset(
        self,
        source: str,
        fmt: str | None,
        hive_schema: HiveSchema | None = None,
        drift: SchemaDrift = "error",
    ) -> ds.Dataset:
        return self._dataset_of(resolve_source(self, source, fmt), source, hive_schema, drift)

    def _dataset_of(
        self, resolved: ResolvedSource, source: str, hive_schema: HiveSchema | None, drift: SchemaDrift
    ) -> ds.Dataset:
        """The dataset of a listing; every object's schema (footer) is read and checked for drift."""
        filesystem = self.filesystem()
        handler = getattr(filesystem, "handler", None)
        if isinstance(handler, ObjectStoreFileSystem):  # the listing's sizes: no HEAD per object
            filesystem = handler.with_sizes(
                {f"{resolved.bucket}/{info.key}": info.size for info in resolved.files}
            )
        # pyarrow's JSON reader and IPC decoder crash on some malformed objects: checked first.
        check_files([f"{resolved.bucket}/{info.key}" for info in resolved.files], resolved.fmt, filesystem)
        file_format = pyarrow_format(resolved.fmt)
        if resolved.directory is None:
            partitions = Partitions([ds.scalar(True)] * len(resolved.files), [])
        else:
            partitions = hive_partitions(
                resolved.directory,
                [info.key for info in resolved.files],
                stored=self._stored_partitions(resolved),
                hive_schema=hive_schema,
            )
        fragments = [
            file_format.make_fragment(
                f"{resolved.bucket}/{info.key}",
                filesystem=filesystem,
                partition_expression=expression,
                file_size=info.size,
            )
            for info, expression in zip(resolved.files, partitions.expressions)
        ]
        schema = dataset_schema(fragments, partitions.fields, drift, resource=source)
        return ds.FileSystemDataset(fragments, schema, file_format, filesystem)

    def stream(
        self,
        source: str,
        *,
        params: QueryParams = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: Sequence[str] | None = None,
        format: str | None = None,
        filter: ds.Expression | None = None,
        hive_schema: HiveSchema | None = None,
        union_by_name: bool = False,
        allow_missing_columns: bool = False,
        version: int | None = None,
        as_of: AsOf | None = None,
        catalog: Any = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield batches of exactly ``batch_size`` rows (the last may be shorter).

        ``source`` is SQL over the configured ``tables`` (starting with SELECT/WITH/FROM...)
        or an object, prefix, glob or table; ``columns`` and a pyarrow ``filter`` expression
        are pushed down into the scan; ``hive_schema`` pins partition column types;
        ``union_by_name`` and ``allow_missing_columns`` read objects whose schemas differ
        (see :meth:`dataset`; without them such drift is a ``SchemaError``). A Delta or
        Iceberg table is read at its latest version, or at ``version`` / ``as_of``.
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        self._ensure_open()
        if looks_like_sql(source):
            batches: Iterator[pa.RecordBatch] = self._sql.stream(source, params, batch_size)
        else:
            if params:
                raise ConfigurationError("params apply to SQL sources only", resource=source)
            drift = drift_mode(union_by_name=union_by_name, allow_missing_columns=allow_missing_columns)

            def open_any() -> Iterator[pa.RecordBatch] | ds.Dataset:
                # One operation (one outcome on the breaker): the table probe, then the data.
                table = open_table(self, source, format, self._polars_options, catalog, version, as_of)
                if table is None:
                    return self._open_dataset(source, format, hive_schema, drift)
                return table_batches(
                    table[1],
                    table[0],
                    columns=columns,
                    filter=filter,
                    batch_size=batch_size,
                    version=version,
                    as_of=as_of,
                )

            opened = self._call("open dataset", open_any, resource=source)
            if not isinstance(opened, ds.Dataset):
                yield from self._translate_stream(rebatch(opened, batch_size), source, validate=True)
                return
            dataset = opened
            check_columns(dataset.schema, columns, source)
            # A transient failure mid-read resumes at the object that failed (data_reads).
            batches = self._resumable(
                "stream",
                lambda checkpoint: resumable_batches(
                    dataset, checkpoint, columns=columns, filter=filter, batch_size=batch_size
                ),
                resource=source,
            )
        yield from self._translate_stream(rebatch(batches, batch_size), source, validate=True)

    def scan(
        self,
        source: str,
        *,
        format: str | None = None,
        hive_schema: HiveSchema | None = None,
        union_by_name: bool = False,
        allow_missing_columns: bool = False,
        schema: Any = None,
        include_file_paths: str | None = None,
        version: int | None = None,
        as_of: AsOf | None = None,
        catalog: Any = None,
        **options: Any,
    ) -> pl.LazyFrame:
        """A Polars ``LazyFrame`` over an object, prefix (hive-partitioned), glob or table.

        Polars reads the objects itself (native cloud reader: projection and predicate
        pushdown, parallel ranged reads) with this connection's credentials; the listing is
        done here, with retries; partition columns get the types ``stream()`` gives them
        (``hive_schema`` pins them). Schema drift across the objects is a ``SchemaError``
        naming the object and column (see :meth:`dataset` for ``union_by_name`` and
        ``allow_missing_columns``): for Parquet and IPC, raised by ``collect()`` (Polars
        refuses the drifted file, then the footers are read to name it; nothing is read
        twice when the objects agree), for CSV and JSON checked here, from first blocks.
        Errors inside the data surface on ``collect()`` as sygnify errors.
        As in Polars, ``schema`` reads the files with these column types (a pyarrow or
        Polars schema, or a mapping) and ``include_file_paths`` adds a column with each
        row's object URL (:mod:`sygnify.io.scan_options`). A Delta table is scanned with
        ``pl.scan_delta``, an Iceberg table with ``pl.scan_iceberg``, at ``version`` /
        ``as_of`` when given.
        """
        if options:
            raise ConfigurationError(f"unknown scan options: {', '.join(sorted(options))}", resource=source)
        drift = drift_mode(union_by_name=union_by_name, allow_missing_columns=allow_missing_columns)
        scan_options = ScanOptions.of(schema=schema, include_file_paths=include_file_paths)

        diagnosis: list[Callable[[], object]] = []

        def open_scan() -> pl.LazyFrame:
            diagnosis.clear()
            table = open_table(self, source, format, self._polars_options, catalog, version, as_of)
            if table is not None:
                if scan_options.given:
                    raise ConfigurationError(
                        "schema= and include_file_paths= apply to file datasets; a table has its own schema",
                        resource=source,
                    )
                return table_scan(table[1], table[0], version=version, as_of=as_of)
            resolved = resolve_source(self, source, format)
            if resolved.fmt == "ipc":  # Polars' IPC decoder aborts on a corrupt object: checked first
                objects = [f"{resolved.bucket}/{info.key}" for info in resolved.files]
                check_files(objects, "ipc", self.filesystem())
            urls = [self.url(resolved.bucket, info.key) for info in resolved.files]
            hive = None
            relative = None
            if resolved.directory is not None:
                relative = [info.key[len(resolved.directory) :] for info in resolved.files]
                stored = self._stored_partitions(resolved)
                hive = partition_schema(relative, stored=stored, hive_schema=hive_schema)
            if drift == "error" and resolved.fmt in ("parquet", "ipc"):
                # Polars refuses drifted Parquet/IPC files itself when it reads them; only
                # then are the footers read, to say which object and column (no cost before).
                diagnosis.append(lambda: self._dataset_of(resolved, source, hive_schema, drift))
                schema = None
            else:
                # The drift check, from the objects' footers (or first blocks), before Polars reads them.
                schema = self._dataset_of(resolved, source, hive_schema, drift).schema
            reader_options = scan_options.reader_options(resolved.fmt)
            if drift == "error":
                frame = polars_scan(
                    resolved.fmt,
                    urls,
                    hive_partitioning=hive is not None,
                    hive_schema=hive,
                    hive_paths=relative,
                    **self._polars_options(),
                    **reader_options,
                )
            else:
                assert schema is not None
                partition_names = set(hive.names) if hive is not None else set()
                file_schema = pa.schema([f for f in schema if f.name not in partition_names])
                frame = polars_drift_scan(
                    resolved.fmt,
                    urls,
                    file_schema,
                    drift,
                    hive_partitioning=hive is not None,
                    **pinned_hive_types(resolved.fmt, hive),
                    **self._polars_options(),
                    **reader_options,
                )
            frame = scan_options.apply(frame, resolved.fmt, source)
            frame.collect_schema()
            return frame

        # Collecting the frame goes through the breaker and error translation too.
        frame = self._call("scan", open_scan, resource=source)
        return self._guarded_scan(frame, resource=source, diagnose=diagnosis[0] if diagnosis else None)

    def _polars_scan(
        self, fmt: FileFormat, urls: list[str], *, hive: pa.Schema | None, hive_paths: list[str] | None = None
    ) -> pl.LazyFrame:
        return polars_scan(
            fmt,
            urls,
            hive_partitioning=hive is not None,
            hive_schema=hive,
            hive_paths=hive_paths,
            **self._polars_options(),
        )

    def query(self, sql: str, params: QueryParams = None) -> pa.Table:
        """Run DuckDB SQL over the configured ``tables``; ``?`` or ``$name`` parameters.

        Each table is the Arrow dataset of its prefix or glob, opened for the query (so new
        objects show up); DuckDB pushes projections and filters into the scan. Values are
        always passed as parameters, never formatted into the SQL.
        """
        return self._call("query", self._sql.query, sql, params, resource=sql)

    def _sql_dataset(self, source: str) -> ds.Dataset:
        drift = drift_mode(
            union_by_name=self.config.union_by_name, allow_missing_columns=self.config.allow_missing_columns
        )
        table = open_table(self, source, None, self._polars_options, None, None, None)
        if table is not None:  # a Delta table: its current version's files, not every version's
            return table_dataset(table[1], table[0])
        return self._open_dataset(source, None, None, drift)

    # -- writes -------------------------------------------------------------------------------

    def write(
        self,
        data: Any,
        target: str,
        *,
        mode: WriteMode = "append",
        format: str | None = None,
        partition_by: Sequence[str] | None = None,
        write_id: str | None = None,
        compression: str | None = None,
        row_group_size: int | None = None,
        max_file_size: int | str | None = None,
        merge_on: Sequence[str] | None = None,
        schema_mode: SchemaMode = None,
        catalog: Any = None,
    ) -> WriteResult:
        """Write Arrow/Polars/pandas data (Parquet unless ``format`` or the extension says otherwise).

        A ``target`` with a file extension is one object, replaced whole and atomically
        (``append`` to an existing object is refused: write to a prefix). Any other target
        is a prefix dataset, written all or nothing (:mod:`sygnify.io.commits`): the new
        part objects become visible to sygnify's readers at once, with one commit object,
        once all of them are in; ``append`` adds them, ``overwrite`` replaces what was there
        (the old data stays visible until the new data is complete); ``partition_by``
        writes hive partitions (``col=value/``). ``write_id`` makes a retried write
        idempotent: a write whose ``write_id`` already committed writes nothing and returns
        the first write's result. ``compression``, ``row_group_size`` (rows) and
        ``max_file_size`` (bytes, or ``"128MB"``) shape the files written.

        ``format="delta"`` (``deltalake``) or ``"iceberg"`` (``pyiceberg``, named in
        ``catalog``) writes a table at the prefix, one commit per write: ``append``,
        ``overwrite`` or ``merge`` (upsert by the ``merge_on`` key columns); a new or retyped
        column is a ``SchemaError`` unless ``schema_mode="merge"`` (add columns) or
        ``"overwrite"`` (with ``mode="overwrite"``) allows it (:mod:`sygnify.io.tables`).
        """
        self._ensure_open()
        if is_table_write(format, mode) or merge_on or schema_mode:
            unsupported = {
                "compression": compression,
                "row_group_size": row_group_size,
                "max_file_size": max_file_size,
            }
            check_no_file_options(target, write_id=write_id, **unsupported)
            rows = to_arrow_table(data)

            def write_table() -> list[str]:
                location = table_location(self, target, self._polars_options(), catalog)
                return write_table_format(
                    rows,
                    location,
                    format=format,
                    mode=mode,
                    partition_by=partition_by,
                    merge_on=merge_on,
                    schema_mode=schema_mode,
                )

            paths = self._call("write", write_table, resource=target)
            return WriteResult(target=target, rows=rows.num_rows, paths=paths)
        options = WriteOptions.of(
            compression=compression, row_group_size=row_group_size, max_file_size=max_file_size
        )
        table = to_arrow_table(data)
        return write_to_store(
            self,
            table,
            target,
            mode=mode,
            format=format,
            partition_by=partition_by,
            write_id=write_id,
            options=options,
        )

    # -- lifecycle and errors -----------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._sql.close()
        super().close()

    def _translate_fallback(self, exc: Exception, message: str, resource: str | None) -> SygnifyError:
        return translate_arrow_error(exc, message, resource) or super()._translate_fallback(
            exc, message, resource
        )
