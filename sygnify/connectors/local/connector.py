"""The embedded default connector: files under a root directory, with SQL through DuckDB.

Reads and writes Parquet, CSV, JSON lines and Arrow IPC files (and globs of them); SQL runs
in an in-process DuckDB sandboxed to the root, so neither a path nor a query can reach a
file outside it::

    >>> import tempfile
    >>> import polars as pl
    >>> from sygnify import CloudDataConnector
    >>> root = tempfile.mkdtemp()
    >>> with CloudDataConnector() as connector:
    ...     lake = connector.connect("local", name="lake", root=root, tables={"tx": "tx/*.parquet"})
    ...     _ = lake.write(pl.DataFrame({"account": ["a", "b", "a"], "amount": [5, 7, 1]}), "tx/")
    ...     lake.query("SELECT account, max(amount) AS top FROM tx WHERE amount > ? "
    ...                "GROUP BY account ORDER BY account", [1]).to_pylist()
    [{'account': 'a', 'top': 5}, {'account': 'b', 'top': 7}]
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal, overload

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
from pydantic import Field

from sygnify.config import ConnectorConfig
from sygnify.connectors.base import BaseConnector, Capability, QueryParams, WriteMode, WriteResult
from sygnify.connectors.local.duckdb import (
    close_sandboxed_database,
    open_sandboxed_database,
    rooted_sql,
    select_sql,
    table_files,
    translate_local_error,
)
from sygnify.connectors.local.files import copy_file, move_file, open_file
from sygnify.connectors.local.paths import data_files, file_dataset, list_files, resolve_under, single_format
from sygnify.connectors.local.tables import local_table, local_table_location
from sygnify.connectors.local.writes import write_dataset, write_file
from sygnify.connectors.pool import ClientPool
from sygnify.errors import (
    ConfigurationError,
    DataQualityError,
    NotFoundError,
    QueryError,
    SygnifyError,
)
from sygnify.io.arrow import DEFAULT_BATCH_SIZE, rebatch, to_arrow_table
from sygnify.io.duckdb import check_table_names, looks_like_sql
from sygnify.io.fileobjects import TextWriter, UploadWriter
from sygnify.io.formats import FileFormat, WriteOptions, detect_format, format_of_file, polars_scan
from sygnify.io.partitions import HiveSchema, local_partition_schema, pinned_hive_types
from sygnify.io.scan_options import ScanOptions
from sygnify.io.schemas import SchemaDrift, check_columns, drift_mode, polars_drift_scan
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

__all__ = ["LocalConfig", "LocalConnector"]


class LocalConfig(ConnectorConfig):
    """Options of the ``local`` connector."""

    root: Path = Field(Path("."), description="Directory every path is relative to and confined in.")
    tables: dict[str, str] = Field(
        default_factory=dict,
        description="SQL table names mapped to paths or globs under root, e.g. {'tx': 'tx/*.parquet'}.",
    )
    create_root: bool = Field(True, description="Create root if it does not exist.")
    threads: int | None = Field(None, ge=1, description="DuckDB worker threads (default: all cores).")
    memory_limit: str | None = Field(None, description="DuckDB memory limit, e.g. '2GB'.")
    union_by_name: bool = Field(
        False,
        description="Tables read the union of their files' columns (matched by name, missing ones "
        "null) instead of refusing schema drift.",
    )
    allow_missing_columns: bool = Field(
        False,
        description="Table files may lack columns of the first file (read as null); other drift "
        "is still a SchemaError.",
    )


class LocalConnector(BaseConnector[LocalConfig]):
    """Files under ``root`` (Parquet, CSV, JSON lines, Arrow IPC) with SQL over them."""

    type_name = "local"
    capabilities = frozenset(
        {Capability.READABLE, Capability.QUERYABLE, Capability.WRITABLE, Capability.CATALOG}
    )
    config_model = LocalConfig

    def __init__(self, config: LocalConfig, *, name: str | None = None, pool: ClientPool | None = None):
        super().__init__(config, name=name, pool=pool)
        root = config.root.expanduser().resolve()
        if not root.exists():
            if not config.create_root:
                raise NotFoundError(f"root directory {root} does not exist", resource=str(root))
            root.mkdir(parents=True)
        if not root.is_dir():
            raise ConfigurationError(f"root {root} is not a directory", resource=str(root))
        check_table_names(config.tables)
        self.root = root
        self._database: duckdb.DuckDBPyConnection = self._shared(
            self._open_database, close_sandboxed_database
        )
        self._views_lock = threading.Lock()
        self._views: dict[str, str] = {}  # table -> the SELECT its view holds
        # table -> the error (type, message) a query naming it gets: its files cannot be read
        self._unreadable: dict[str, tuple[type[SygnifyError], str]] = {}

    # -- paths -------------------------------------------------------------------------

    def resolve(self, path: str) -> Path:
        """The absolute path of ``path`` under root; refuses anything that escapes it."""
        return resolve_under(self.root, path)

    # -- DuckDB --------------------------------------------------------------------------

    def _open_database(self) -> duckdb.DuckDBPyConnection:
        return open_sandboxed_database(
            self.root, threads=self.config.threads, memory_limit=self.config.memory_limit
        )

    def _ensure_views(self) -> None:
        """Point each configured table's view at the data files it names now (before each query).

        The files are listed afresh every time, so new ones show up and removed ones are
        not read; a view is replaced only when its file list changed, and a table without
        files has no view (querying it names the table, see :meth:`_translate`). A new file
        list has its files' schemas checked first (schema drift is a ``SchemaError`` unless
        the config's ``union_by_name`` or ``allow_missing_columns`` allows it).
        """
        drift = drift_mode(
            union_by_name=self.config.union_by_name, allow_missing_columns=self.config.allow_missing_columns
        )
        with self._views_lock:
            for table, source in self.config.tables.items():
                try:
                    found = local_table(self.root, source, None, None, None, None)
                    if found is not None:  # a Delta table: the files of its current version
                        directory: Path | None = self.resolve(source)
                        delta = table_dataset(found[1], found[0])
                        # Paths of the current version's files, relative to the table.
                        files = sorted(str(self.resolve(source) / f) for f in delta.files)
                        fmt: FileFormat = "parquet"
                    else:
                        files, directory, fmt = table_files(self.root, source)
                    view_sql = select_sql(files, directory, fmt, drift)
                    if self._views.get(table) == view_sql:
                        continue
                    file_dataset(files, fmt, directory, drift, source=source)  # the drift check
                except NotFoundError:
                    self._unreadable.pop(table, None)
                    if self._views.pop(table, None) is not None:
                        self._database.execute(f'DROP VIEW IF EXISTS "{table}"')
                    continue
                except SygnifyError as exc:
                    # Bad files (corrupt, drifted, mixed formats) break only the queries naming this table.
                    self._set_unreadable(table, type(exc), f"table {table!r}: {exc.message}")
                    continue
                except (pa.ArrowException, OSError) as exc:  # a file pyarrow cannot open
                    error = translate_local_error(exc, f"table {table!r} ({source!r}): {exc}", table)
                    self._set_unreadable(table, type(error), error.message)
                    continue
                try:
                    self._database.execute(f'CREATE OR REPLACE VIEW "{table}" AS {view_sql}')
                except duckdb.Error as exc:
                    reason = str(exc).splitlines()[0]
                    self._set_unreadable(
                        table,
                        DataQualityError,
                        f"table {table!r} is configured as {source!r}, but its data files cannot be "
                        f"read: {reason} (fix or remove the bad files)",
                    )
                    continue
                self._unreadable.pop(table, None)
                self._views[table] = view_sql

    def _set_unreadable(self, table: str, error: type[SygnifyError], message: str) -> None:
        # One unreadable table must not break SQL over the others: it has no view (its files
        # are tried again before the next query), and a query naming it gets this error.
        self._unreadable[table] = (error, message)
        if self._views.pop(table, None) is not None:
            self._database.execute(f'DROP VIEW IF EXISTS "{table}"')

    def _relation(self, sql: str, params: QueryParams) -> duckdb.DuckDBPyRelation:
        self._ensure_views()
        cursor = self._database.cursor()
        relation = cursor.sql(rooted_sql(self.root, sql), params=params)
        if relation is None:
            raise QueryError("the statement returns no rows; query() and stream() need a query", resource=sql)
        return relation

    # -- protocol ------------------------------------------------------------------------

    def query(self, sql: str, params: QueryParams = None) -> pa.Table:
        """Run DuckDB SQL over the configured ``tables``; ``?`` or ``$name`` parameters.

        Values are always passed as parameters, never formatted into the SQL.
        """
        return self._call("query", lambda: self._relation(sql, params).to_arrow_table(), resource=sql)

    def stream(
        self,
        source: str,
        *,
        params: QueryParams = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: Sequence[str] | None = None,
        format: str | None = None,
        union_by_name: bool = False,
        allow_missing_columns: bool = False,
        hive_schema: HiveSchema | None = None,
        filter: ds.Expression | None = None,
        version: int | None = None,
        as_of: AsOf | None = None,
        catalog: Any = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield batches of exactly ``batch_size`` rows (the last may be shorter).

        ``source`` is SQL (starting with SELECT/WITH/FROM...) or a path, directory or glob
        under root; ``columns`` projects a file source. Files whose schemas differ are a
        ``SchemaError`` naming the file and column, unless ``union_by_name`` (the union of
        the columns, missing ones null) or ``allow_missing_columns`` (files may lack columns
        of the first file) says how to read them; SQL sources follow the config's options.
        A directory's hive partition columns get the types its writer stored, or those
        ``hive_schema`` pins (a schema, or a mapping of column to type). A Delta table
        (``format="delta"`` or a directory with a ``_delta_log/``) or an Iceberg table
        (``format="iceberg"``) is read at its latest version, or at ``version`` / ``as_of``
        (a datetime or ISO string), with ``columns`` and a pyarrow ``filter`` pushed down.
        """
        drift = drift_mode(union_by_name=union_by_name, allow_missing_columns=allow_missing_columns)
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}", resource=source)
        if looks_like_sql(source):
            reader = self._call(
                "query", lambda: self._relation(source, params).to_arrow_reader(batch_size), resource=source
            )
            batches: Iterator[pa.RecordBatch] = iter(reader)
        else:
            if params:
                raise ConfigurationError("params apply to SQL sources only", resource=source)
            found = lambda: local_table(self.root, source, format, catalog, version, as_of)  # noqa: E731
            table = self._call("open dataset", found, resource=source)
            if table is not None:
                table_format, location = table
                batches = self._call(
                    "open dataset",
                    lambda: table_batches(
                        location,
                        table_format,
                        columns=columns,
                        filter=filter,
                        batch_size=batch_size,
                        version=version,
                        as_of=as_of,
                    ),
                    resource=source,
                )
                yield from self._translate_stream(rebatch(batches, batch_size), source, validate=True)
                return
            dataset = self._call(
                "open dataset", self._dataset, source, format, drift, hive_schema, resource=source
            )
            check_columns(dataset.schema, columns, source)
            batches = dataset.to_batches(
                columns=list(columns) if columns else None, filter=filter, batch_size=batch_size
            )
        yield from self._translate_stream(rebatch(batches, batch_size), source, validate=True)

    def _dataset(
        self,
        source: str,
        fmt: str | None,
        drift: SchemaDrift = "error",
        hive_schema: HiveSchema | None = None,
    ) -> ds.Dataset:
        files, directory = data_files(self.root, source, fmt)
        file_format = single_format(files, source, fmt)
        return file_dataset(files, file_format, directory, drift, source=source, hive_schema=hive_schema)[0]

    def scan(
        self,
        source: str,
        *,
        format: str | None = None,
        union_by_name: bool = False,
        allow_missing_columns: bool = False,
        hive_schema: HiveSchema | None = None,
        schema: Any = None,
        include_file_paths: str | None = None,
        version: int | None = None,
        as_of: AsOf | None = None,
        catalog: Any = None,
        **options: Any,
    ) -> pl.LazyFrame:
        """A Polars ``LazyFrame`` over a path, directory (hive-partitioned) or glob under root.

        Missing files, unreadable headers, format mismatches and schema drift across the
        files (see :meth:`stream` for ``union_by_name`` and ``allow_missing_columns``) raise
        here; errors inside the data surface when the frame is collected. As in Polars,
        ``schema`` reads the files with these column types (a pyarrow or Polars schema, or a
        mapping) and ``include_file_paths`` adds a column with each row's file path
        (:mod:`sygnify.io.scan_options`). A Delta table is scanned with ``pl.scan_delta``,
        an Iceberg table with ``pl.scan_iceberg``, at ``version`` / ``as_of`` when given.
        """
        if options:
            raise ConfigurationError(f"unknown scan options: {', '.join(sorted(options))}", resource=source)
        drift = drift_mode(union_by_name=union_by_name, allow_missing_columns=allow_missing_columns)
        scan_options = ScanOptions.of(schema=schema, include_file_paths=include_file_paths)

        def open_scan() -> pl.LazyFrame:
            table = local_table(self.root, source, format, catalog, version, as_of)
            if table is not None:
                if scan_options.given:
                    raise ConfigurationError(
                        "schema= and include_file_paths= apply to file datasets; a table has its own schema",
                        resource=source,
                    )
                return table_scan(table[1], table[0], version=version, as_of=as_of)
            files, directory = data_files(self.root, source, format)
            file_format = single_format(files, source, format)
            # The drift check, from the files' footers (or first blocks) before Polars reads them.
            _, file_schema = file_dataset(
                files, file_format, directory, drift, source=source, hive_schema=hive_schema
            )
            hive = directory is not None
            # The partition types stream() and SQL use (sygnify.io.partitions), pinned for Polars.
            partitions = relative = None
            if directory is not None:
                partitions = local_partition_schema(directory, files, hive_schema=hive_schema)
                relative = [Path(path).relative_to(directory).as_posix() for path in files]
            reader_options = scan_options.reader_options(file_format)
            if drift == "error":
                frame = polars_scan(
                    file_format,
                    files,
                    hive_partitioning=hive,
                    hive_schema=partitions,
                    hive_paths=relative,
                    **reader_options,
                )
            else:
                pinned = pinned_hive_types(file_format, partitions)
                frame = polars_drift_scan(
                    file_format, files, file_schema, drift, hive_partitioning=hive, **pinned, **reader_options
                )
            frame = scan_options.apply(frame, file_format, source)
            frame.collect_schema()
            return frame

        # Collecting the frame translates Polars' errors (a malformed value, a file removed
        # by a concurrent overwrite) into sygnify errors, as every connector's scan does.
        return self._guarded_scan(self._call("scan", open_scan, resource=source), resource=source)

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
        """Write Arrow/Polars/pandas data under root.

        A ``target`` with a file extension is one file, replaced atomically (``append`` to
        an existing file is refused: use a directory). Any other target is a directory
        dataset, written all or nothing (:mod:`sygnify.io.commits`): ``append`` adds new
        part files, ``overwrite`` replaces its contents, and readers see the new files only
        once all of them are in; ``partition_by`` writes hive partitions (``col=value/``).
        ``write_id`` makes a retried write idempotent (a ``write_id`` already committed
        writes nothing); ``compression``, ``row_group_size`` and ``max_file_size`` (bytes or
        ``"128MB"``) shape the files written.

        ``format="delta"`` (``deltalake``) or ``"iceberg"`` (``pyiceberg``; the catalog is
        ``catalog``, by default the SQLite file ``.sygnify_iceberg.db`` at the root) writes a
        table in the directory, one commit per write: ``append``, ``overwrite`` or ``merge``
        (upsert by the ``merge_on`` key columns); a new or retyped column is a
        ``SchemaError`` unless ``schema_mode="merge"`` (add columns) or ``"overwrite"``
        (with ``mode="overwrite"``) allows it (:mod:`sygnify.io.tables`).
        """
        if is_table_write(format, mode) or merge_on or schema_mode:
            unsupported = {
                "compression": compression,
                "row_group_size": row_group_size,
                "max_file_size": max_file_size,
            }
            check_no_file_options(target, write_id=write_id, **unsupported)
            rows = to_arrow_table(data)

            def write_table() -> list[str]:
                location = local_table_location(self.root, target, catalog)
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
        if mode not in ("append", "overwrite"):
            raise ConfigurationError(f"mode must be 'append' or 'overwrite', got {mode!r}")
        options = WriteOptions.of(
            compression=compression, row_group_size=row_group_size, max_file_size=max_file_size
        )
        table = to_arrow_table(data)
        path = self.resolve(target)
        is_file = format_of_file(target) is not None and not target.endswith("/") and not partition_by
        if is_file:
            return self._call(
                "write", write_file, self.root, table, path, target, mode, format, options, resource=target
            )
        fmt = detect_format(target, format or "parquet")
        return self._call(
            "write",
            write_dataset,
            self.root,
            table,
            path,
            target,
            mode,
            fmt,
            partition_by,
            write_id=write_id,
            options=options,
            resource=target,
        )

    def list(self, prefix: str = "") -> list[str]:
        """Files under ``root/prefix`` as paths relative to root, sorted."""
        return list_files(self.root, prefix)

    def _check_health(self) -> str:
        if not os.access(self.root, os.R_OK | os.W_OK):
            raise ConfigurationError(
                f"root {self.root} is not readable and writable", resource=str(self.root)
            )
        self._database.cursor().sql("SELECT 1").fetchall()
        return f"root {self.root}"

    # -- errors --------------------------------------------------------------------------

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        message = f"{operation} failed for {resource!r}: {exc}"
        if isinstance(exc, duckdb.CatalogException):
            unregistered = [table for table in self.config.tables if table not in self._views]
            for table in unregistered:
                if f"name {table} does not exist" in str(exc):
                    source = self.config.tables[table]
                    if table in self._unreadable:
                        error, text = self._unreadable[table]
                        return error(text, resource=table)
                    return NotFoundError(
                        f"table {table!r} is configured as {source!r}, but no data files match it under "
                        f"{self.root}",
                        resource=table,
                    )
        return translate_local_error(exc, message, resource)

    # -- single files: open, copy, move ------------------------------------------------------

    @overload
    def open(self, path: str, mode: Literal["rb"] = "rb") -> io.BufferedReader: ...

    @overload
    def open(self, path: str, mode: Literal["wb"]) -> UploadWriter: ...

    @overload
    def open(
        self, path: str, mode: Literal["r", "rt"], *, encoding: str | None = None, newline: str | None = None
    ) -> io.TextIOWrapper: ...

    @overload
    def open(
        self, path: str, mode: Literal["w", "wt"], *, encoding: str | None = None, newline: str | None = None
    ) -> TextWriter: ...

    def open(
        self, path: str, mode: str = "rb", *, encoding: str | None = None, newline: str | None = None
    ) -> IO[Any] | UploadWriter | TextWriter:
        """A file under root for reading (``"rb"``, ``"r"``) or replacing (``"wb"``, ``"w"``).

        A writer publishes the file only when ``close()`` succeeds: an exception inside
        ``with`` leaves the old file (or none). Paths that escape root are refused::

            with lake.open("exports/report.csv", "w") as out:
                out.write("id,total\\n1,42\\n")
        """
        return self._call(
            "open", open_file, self.root, path, mode, encoding=encoding, newline=newline, resource=path
        )

    def copy(self, source: str, destination: str) -> str:
        """Copy one file under root (replacing ``destination`` atomically); returns its path."""
        return self._call("copy", copy_file, self.root, source, destination, resource=source)

    def move(self, source: str, destination: str) -> str:
        """Move one file under root (one rename where it can); returns its new path."""
        return self._call("move", move_file, self.root, source, destination, resource=source)
