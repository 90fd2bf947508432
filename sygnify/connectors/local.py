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

import glob
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
from pydantic import Field

from sygnify._arrow import DEFAULT_BATCH_SIZE, rebatch, to_arrow_table
from sygnify.config import ConnectorConfig, config_fingerprint
from sygnify.connectors._duckdb_sql import check_table_names, looks_like_sql
from sygnify.connectors.base import BaseConnector, QueryParams, WriteMode, WriteResult
from sygnify.connectors.formats import (
    SUFFIX,
    FileFormat,
    detect_format,
    format_of_file,
    polars_scan,
    pyarrow_format,
    write_table,
)
from sygnify.connectors.pool import ClientPool
from sygnify.errors import (
    ConfigurationError,
    DataQualityError,
    MemoryBudgetError,
    NotFoundError,
    PathEscapeError,
    QueryError,
    SchemaError,
    SygnifyError,
)

__all__ = ["LocalConfig", "LocalConnector"]

_GLOB_CHARS = re.compile(r"[*?\[]")
_TEMP_PREFIX = ".sygnify-tmp-"


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


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class LocalConnector(BaseConnector[LocalConfig]):
    """Files under ``root`` (Parquet, CSV, JSON lines, Arrow IPC) with SQL over them."""

    type_name = "local"
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
        self._pool_key = config_fingerprint(config, exclude=frozenset({"retry", "breaker"}))
        self._database: duckdb.DuckDBPyConnection = self._pool.acquire(
            self._pool_key, self._open_database, lambda db: db.close()
        )
        self._views_lock = threading.Lock()
        self._views: set[str] = set()

    # -- paths -------------------------------------------------------------------------

    def resolve(self, path: str) -> Path:
        """The absolute path of ``path`` under root; refuses anything that escapes it."""
        candidate = Path(path).expanduser()
        full = candidate if candidate.is_absolute() else self.root / candidate
        resolved = Path(os.path.realpath(full))
        if not resolved.is_relative_to(self.root):
            raise PathEscapeError(
                f"path {path!r} resolves to {resolved}, outside the connector root {self.root}",
                resource=path,
            )
        return resolved

    def _files(self, source: str, fmt: str | None = None) -> tuple[list[str], Path | None]:
        """Data files named by a path, directory or glob, each checked to be under root.

        Returns the files and, for a directory, the directory (hive partitions live there).
        """
        base = self.resolve(source)
        if _GLOB_CHARS.search(source):
            matches = sorted(glob.glob(str(base), recursive=True))
            files = [self.resolve(match) for match in matches if os.path.isfile(match)]
            directory = None
        elif base.is_dir():
            files = sorted(
                self.resolve(str(path))
                for path in base.rglob("*")
                if path.is_file()
                and not path.name.startswith((".", "_"))
                and (fmt is not None or format_of_file(path.name) is not None)
            )
            directory = base
        elif base.is_file():
            files, directory = [base], None
        else:
            raise NotFoundError(f"no file or directory {source!r} under {self.root}", resource=source)
        if not files:
            raise NotFoundError(f"{source!r} matches no data files under {self.root}", resource=source)
        return [str(path) for path in files], directory

    def _format(self, files: list[str], source: str, explicit: str | None) -> FileFormat:
        if explicit is not None:
            return detect_format(source, explicit)
        formats = {format_of_file(path) for path in files}
        if len(formats) != 1 or None in formats:
            names = ", ".join(sorted(str(fmt) for fmt in formats))
            raise ConfigurationError(
                f"{source!r} mixes file formats ({names}); narrow the glob or pass format=",
                resource=source,
            )
        return formats.pop()  # type: ignore[return-value]

    # -- DuckDB --------------------------------------------------------------------------

    def _open_database(self) -> duckdb.DuckDBPyConnection:
        database = duckdb.connect(":memory:")
        if self.config.threads is not None:
            database.execute(f"SET threads={int(self.config.threads)}")
        if self.config.memory_limit is not None:
            database.execute(f"SET memory_limit={_quote(self.config.memory_limit)}")
        # The sandbox: files only under root, and the settings locked so SQL cannot undo it.
        database.execute(f"SET allowed_directories=[{_quote(str(self.root) + os.sep)}]")
        database.execute("SET enable_external_access=false")
        database.execute("SET lock_configuration=true")
        return database

    def _table_sql(self, source: str) -> str:
        """A SELECT over ``source`` that DuckDB re-expands on every query (new files show up)."""
        files, directory = self._files(source)
        fmt = self._format(files, source, None)
        reader = {
            "parquet": "read_parquet",
            "csv": "read_csv",
            "json": "read_json_auto",
            "ipc": "read_arrow",
        }[fmt]
        if directory is not None:
            suffixes = {Path(path).suffix for path in files}
            pattern = str(directory / "**" / f"*{suffixes.pop()}") if len(suffixes) == 1 else None
            target = _quote(pattern) if pattern else "[" + ", ".join(map(_quote, files)) + "]"
            options = ", hive_partitioning=true" if fmt in ("parquet", "csv") else ""
        else:
            target, options = _quote(str(self.resolve(source))), ""
        return f"SELECT * FROM {reader}({target}{options})"

    def _ensure_views(self) -> None:
        """Register each configured table whose files exist (tables without files yet are retried)."""
        with self._views_lock:
            for table, source in self.config.tables.items():
                if table in self._views:
                    continue
                try:
                    view_sql = self._table_sql(source)
                except NotFoundError:
                    continue
                except SygnifyError as exc:
                    raise type(exc)(f"table {table!r}: {exc.message}", resource=table) from exc
                try:
                    self._database.execute(f'CREATE OR REPLACE VIEW "{table}" AS {view_sql}')
                except duckdb.Error as exc:
                    raise self._translate(exc, operation=f"register table {table!r}", resource=table) from exc
                self._views.add(table)

    def _relation(self, sql: str, params: QueryParams) -> duckdb.DuckDBPyRelation:
        self._ensure_views()
        cursor = self._database.cursor()
        relation = cursor.sql(sql, params=params)
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
    ) -> Iterator[pa.RecordBatch]:
        """Yield batches of exactly ``batch_size`` rows (the last may be shorter).

        ``source`` is SQL (starting with SELECT/WITH/FROM...) or a path, directory or glob
        under root; ``columns`` projects a file source.
        """
        if looks_like_sql(source):
            reader = self._call(
                "query", lambda: self._relation(source, params).to_arrow_reader(batch_size), resource=source
            )
            batches: Iterator[pa.RecordBatch] = iter(reader)
        else:
            if params:
                raise ConfigurationError("params apply to SQL sources only", resource=source)
            dataset = self._call("open dataset", self._dataset, source, format, resource=source)
            batches = dataset.to_batches(columns=list(columns) if columns else None, batch_size=batch_size)
        yield from self._translate_stream(rebatch(batches, batch_size), source)

    def _dataset(self, source: str, fmt: str | None) -> ds.Dataset:
        files, directory = self._files(source, fmt)
        file_format = self._format(files, source, fmt)
        if directory is not None:
            return ds.dataset(
                files,
                format=pyarrow_format(file_format),
                partitioning="hive",
                partition_base_dir=str(directory),
            )
        return ds.dataset(files, format=pyarrow_format(file_format))

    def scan(self, source: str, *, format: str | None = None, **options: Any) -> pl.LazyFrame:
        """A Polars ``LazyFrame`` over a path, directory (hive-partitioned) or glob under root.

        Missing files, unreadable headers and format mismatches raise here; errors inside
        the data surface when the frame is collected.
        """
        if options:
            raise ConfigurationError(f"unknown scan options: {', '.join(sorted(options))}", resource=source)

        def open_scan() -> pl.LazyFrame:
            files, directory = self._files(source, format)
            file_format = self._format(files, source, format)
            frame = polars_scan(file_format, files, hive_partitioning=directory is not None)
            frame.collect_schema()
            return frame

        return self._call("scan", open_scan, resource=source)

    def write(
        self,
        data: Any,
        target: str,
        *,
        mode: WriteMode = "append",
        format: str | None = None,
        partition_by: Sequence[str] | None = None,
    ) -> WriteResult:
        """Write Arrow/Polars/pandas data under root.

        A ``target`` with a file extension is one file, replaced atomically (``append`` to
        an existing file is refused: use a directory). Any other target is a directory
        dataset: ``append`` adds new part files, ``overwrite`` replaces its contents;
        ``partition_by`` writes hive partitions (``col=value/``).
        """
        if mode not in ("append", "overwrite"):
            raise ConfigurationError(f"mode must be 'append' or 'overwrite', got {mode!r}")
        table = to_arrow_table(data)
        path = self.resolve(target)
        is_file = format_of_file(target) is not None and not target.endswith("/") and not partition_by
        if is_file:
            return self._call("write", self._write_file, table, path, target, mode, format, resource=target)
        fmt = detect_format(target, format or "parquet")
        return self._call(
            "write", self._write_dataset, table, path, target, mode, fmt, partition_by, resource=target
        )

    def _write_file(
        self, table: pa.Table, path: Path, target: str, mode: WriteMode, format: str | None
    ) -> WriteResult:
        if path.exists() and mode == "append":
            raise ConfigurationError(
                f"cannot append to the single file {target!r}; write to a directory "
                "(a target without extension) to append part files, or use mode='overwrite'",
                resource=target,
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{_TEMP_PREFIX}{uuid.uuid4().hex}{path.suffix}")
        try:
            write_table(table, str(temporary), detect_format(target, format))
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return WriteResult(target=target, rows=table.num_rows, paths=[self._relative(path)])

    def _write_dataset(
        self,
        table: pa.Table,
        directory: Path,
        target: str,
        mode: WriteMode,
        fmt: FileFormat,
        partition_by: Sequence[str] | None,
    ) -> WriteResult:
        missing = [column for column in partition_by or [] if column not in table.column_names]
        if partition_by and fmt == "json":
            raise ConfigurationError("partition_by needs format parquet, csv or ipc", resource=target)
        if missing:
            raise SchemaError(f"partition columns not in the data: {', '.join(missing)}", resource=target)
        staging = directory.parent / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
        written: list[str] = []
        basename = f"part-{uuid.uuid4().hex}-{{i}}{SUFFIX[fmt]}"
        try:
            if fmt == "json":
                self._write_json_part(table, staging, basename, written)
            else:
                ds.write_dataset(
                    table,
                    staging,
                    format=fmt,
                    basename_template=basename,
                    partitioning=list(partition_by) if partition_by else None,
                    partitioning_flavor="hive" if partition_by else None,
                    file_visitor=lambda written_file: written.append(written_file.path),
                )
            if mode == "overwrite" and directory.exists():
                shutil.rmtree(directory)
            final_paths = []
            for staged in written:
                relative = Path(staged).relative_to(staging)
                destination = directory / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, destination)
                final_paths.append(self._relative(destination))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return WriteResult(target=target, rows=table.num_rows, paths=sorted(final_paths))

    @staticmethod
    def _write_json_part(table: pa.Table, staging: Path, basename: str, written: list[str]) -> None:
        staging.mkdir(parents=True)
        path = staging / basename.format(i=0)
        write_table(table, str(path), "json")
        written.append(str(path))

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def list(self, prefix: str = "") -> list[str]:
        """Files under ``root/prefix`` as paths relative to root, sorted."""
        base = self.resolve(prefix or ".")
        if base.is_file():
            return [self._relative(base)]
        if not base.exists():
            return []
        return sorted(
            self._relative(path)
            for path in base.rglob("*")
            if path.is_file() and not path.name.startswith(_TEMP_PREFIX)
        )

    def close(self) -> None:
        if not self._closed:
            self._pool.release(self._pool_key)
        super().close()

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
                    return NotFoundError(
                        f"table {table!r} is configured as {source!r}, but no data files match it under "
                        f"{self.root}",
                        resource=table,
                    )
        return _translate_local_error(exc, message, resource)


def _translate_local_error(exc: Exception, message: str, resource: str | None) -> SygnifyError:
    text = str(exc)
    if isinstance(exc, duckdb.PermissionException):
        return PathEscapeError(
            f"{message} (only files under the connector root are reachable)", resource=resource
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return MemoryBudgetError(message, resource=resource)
    if isinstance(exc, duckdb.CatalogException) and "does not exist" in text:
        return NotFoundError(message, resource=resource)
    if isinstance(exc, duckdb.IOException) and ("No files found" in text or "No such file" in text):
        return NotFoundError(message, resource=resource)
    if isinstance(exc, duckdb.IOException | duckdb.ConversionException) or (
        isinstance(exc, duckdb.InvalidInputException)
        and any(word in text for word in ("CSV", "sniffing", "magic bytes", "parquet", "JSON"))
    ):
        return DataQualityError(message, resource=resource)
    if isinstance(exc, duckdb.Error):
        return QueryError(message, resource=resource)
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(message, resource=resource)
    if isinstance(exc, pa.ArrowTypeError | pl.exceptions.SchemaError | pl.exceptions.ColumnNotFoundError):
        return SchemaError(message, resource=resource)
    if isinstance(exc, pa.ArrowInvalid | pl.exceptions.ComputeError | OSError):
        return DataQualityError(message, resource=resource)
    return SygnifyError(message, resource=resource)
