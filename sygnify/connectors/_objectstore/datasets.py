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
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from sygnify.connectors._objectstore.arrow_errors import translate_arrow_error
from sygnify.connectors._objectstore.filesystem import ObjectStoreFileSystem
from sygnify.connectors._objectstore.sources import (
    Partitions,
    ResolvedSource,
    hive_partitions,
    resolve_source,
)
from sygnify.connectors._objectstore.store import ConfigT, ObjectStore
from sygnify.connectors.base import Capability, QueryParams, WriteMode, WriteResult
from sygnify.connectors.pool import ClientPool
from sygnify.errors import ConfigurationError, SchemaError, SygnifyError
from sygnify.io.arrow import DEFAULT_BATCH_SIZE, rebatch, to_arrow_table
from sygnify.io.duckdb import DatasetSQL, looks_like_sql
from sygnify.io.formats import (
    SUFFIX,
    FileFormat,
    detect_format,
    format_of_file,
    polars_scan,
    pyarrow_format,
    write_parts,
    write_table,
)
from sygnify.io.partitions import (
    PARTITIONS_FILE,
    HiveSchema,
    partition_schema,
    pinned_hive_types,
    read_partitions_file,
)
from sygnify.io.schemas import SchemaDrift, check_columns, dataset_schema, drift_mode, polars_drift_scan

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
    ) -> ds.Dataset:
        """A :class:`pyarrow.dataset.Dataset` over an object, prefix or glob.

        Listing happens once, through the SDK (with retries); object sizes are handed to
        pyarrow so reading needs no extra round trips. Directory sources get hive partitions,
        typed by ``hive_schema`` (a schema or a mapping of column to type), else by the
        types the writer stored, else inferred (:mod:`sygnify.io.partitions`). Every
        object's schema (its footer) is read: objects whose schemas differ are a
        ``SchemaError`` naming the object and column, unless ``union_by_name`` (the union of
        the columns, missing ones null) or ``allow_missing_columns`` (objects may lack
        columns of the first) says how to read them (:mod:`sygnify.io.schemas`).
        """
        drift = drift_mode(union_by_name=union_by_name, allow_missing_columns=allow_missing_columns)
        return self._call(
            "open dataset", self._open_dataset, source, format, hive_schema, drift, resource=source
        )

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
    ) -> Iterator[pa.RecordBatch]:
        """Yield batches of exactly ``batch_size`` rows (the last may be shorter).

        ``source`` is SQL over the configured ``tables`` (starting with SELECT/WITH/FROM...)
        or an object, prefix or glob; ``columns`` and a pyarrow ``filter`` expression are
        pushed down into the scan; ``hive_schema`` pins partition column types;
        ``union_by_name`` and ``allow_missing_columns`` read objects whose schemas differ
        (see :meth:`dataset`; without them such drift is a ``SchemaError``).
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        self._ensure_open()
        if looks_like_sql(source):
            batches: Iterator[pa.RecordBatch] = self._sql.stream(source, params, batch_size)
        else:
            if params:
                raise ConfigurationError("params apply to SQL sources only", resource=source)
            dataset = self.dataset(
                source,
                format=format,
                hive_schema=hive_schema,
                union_by_name=union_by_name,
                allow_missing_columns=allow_missing_columns,
            )
            check_columns(dataset.schema, columns, source)
            batches = dataset.to_batches(
                columns=list(columns) if columns else None, filter=filter, batch_size=batch_size
            )
        yield from self._translate_stream(rebatch(batches, batch_size), source)

    def scan(
        self,
        source: str,
        *,
        format: str | None = None,
        hive_schema: HiveSchema | None = None,
        union_by_name: bool = False,
        allow_missing_columns: bool = False,
        **options: Any,
    ) -> pl.LazyFrame:
        """A Polars ``LazyFrame`` over an object, prefix (hive-partitioned) or glob.

        Polars reads the objects itself (native cloud reader: projection and predicate
        pushdown, parallel ranged reads) with this connection's credentials; the listing is
        done here, with retries; partition columns get the types ``stream()`` gives them
        (``hive_schema`` pins them). Schema drift across the objects is checked here, from
        their footers (see :meth:`dataset` for ``union_by_name`` and
        ``allow_missing_columns``); errors inside the data surface on ``collect()``.
        """
        if options:
            raise ConfigurationError(f"unknown scan options: {', '.join(sorted(options))}", resource=source)
        drift = drift_mode(union_by_name=union_by_name, allow_missing_columns=allow_missing_columns)

        def open_scan() -> pl.LazyFrame:
            resolved = resolve_source(self, source, format)
            urls = [self.url(resolved.bucket, info.key) for info in resolved.files]
            hive = None
            relative = None
            if resolved.directory is not None:
                relative = [info.key[len(resolved.directory) :] for info in resolved.files]
                stored = self._stored_partitions(resolved)
                hive = partition_schema(relative, stored=stored, hive_schema=hive_schema)
            # The drift check, from the objects' footers (or first blocks), before Polars reads them.
            schema = self._dataset_of(resolved, source, hive_schema, drift).schema
            if drift == "error":
                frame = self._polars_scan(resolved.fmt, urls, hive=hive, hive_paths=relative)
            else:
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
                )
            frame.collect_schema()
            return frame

        return self._call("scan", open_scan, resource=source)

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
    ) -> WriteResult:
        """Write Arrow/Polars/pandas data (Parquet unless ``format`` or the extension says otherwise).

        A ``target`` with a file extension is one object, replaced whole (``append`` to an
        existing object is refused: write to a prefix). Any other target is a prefix
        dataset: ``append`` adds part objects, ``overwrite`` replaces what was there once the
        new parts are in; ``partition_by`` writes hive partitions (``col=value/``).
        """
        if mode not in ("append", "overwrite"):
            raise ConfigurationError(f"mode must be 'append' or 'overwrite', got {mode!r}", resource=target)
        self._ensure_open()
        table = to_arrow_table(data)
        bucket, key, as_url = self.locate(target)
        is_object = format_of_file(key) is not None and not key.endswith("/") and not partition_by
        with tempfile.TemporaryDirectory(prefix="sygnify-stage-") as staging:
            if is_object:
                fmt = detect_format(key, format)
                if mode == "append" and self.exists(self.url(bucket, key)):
                    raise ConfigurationError(
                        f"cannot append to the single object {target!r}; write to a prefix "
                        "(a target without extension) to append part objects, or use mode='overwrite'",
                        resource=target,
                    )
                local = Path(staging) / f"object{SUFFIX[fmt]}"
                self._write_local(table, local, fmt)
                with local.open("rb") as handle:
                    self._upload_stream(bucket, key, handle, None, None)
                return WriteResult(
                    target=target, rows=table.num_rows, paths=[self._display(bucket, key, as_url)]
                )
            fmt = detect_format(target, format or "parquet")
            prefix = key.rstrip("/") + "/" if key.strip("/") else ""
            previous = [info.key for info in self.iter_objects(bucket, prefix)] if mode == "overwrite" else []
            written = self._stage_dataset(table, Path(staging), fmt, partition_by, target)
            new_keys = []
            for relative in written:
                object_key = prefix + relative
                with (Path(staging) / relative).open("rb") as handle:
                    self._upload_stream(bucket, object_key, handle, None, None)
                new_keys.append(object_key)
        stale = sorted(set(previous) - set(new_keys))
        if stale:
            self.delete(*(self.url(bucket, stale_key) for stale_key in stale))
        return WriteResult(
            target=target,
            rows=table.num_rows,
            paths=sorted(
                self._display(bucket, k, as_url) for k in new_keys if k.rsplit("/", 1)[-1] != PARTITIONS_FILE
            ),
        )

    @staticmethod
    def _write_local(table: pa.Table, path: Path, fmt: FileFormat) -> None:
        write_table(table, str(path), fmt)

    def _stage_dataset(
        self, table: pa.Table, staging: Path, fmt: FileFormat, partition_by: Sequence[str] | None, target: str
    ) -> list[str]:
        missing = [column for column in partition_by or [] if column not in table.column_names]
        if missing:
            raise SchemaError(f"partition columns not in the data: {', '.join(missing)}", resource=target)
        if partition_by and fmt == "json":
            raise ConfigurationError("partition_by needs format parquet, csv or ipc", resource=target)
        root = staging / "data"
        files = sorted(write_parts(table, root, fmt, partition_by))
        for path in files:
            destination = staging / path.relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), destination)
        shutil.rmtree(root, ignore_errors=True)
        return [path.relative_to(root).as_posix() for path in files]

    # -- lifecycle and errors -----------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._sql.close()
        super().close()

    def _translate_fallback(self, exc: Exception, message: str, resource: str | None) -> SygnifyError:
        return translate_arrow_error(exc, message, resource) or super()._translate_fallback(
            exc, message, resource
        )
