"""DuckDB SQL over Arrow datasets that a connector opens on demand (object stores).

The object-store connectors do not let DuckDB reach the network or the local disk: DuckDB
runs sandboxed (:func:`open_sandbox`: external access off, a private spill folder,
settings locked) and sees only the Arrow
datasets the connector registers for the table names its configuration declares. Each
query opens those datasets afresh, so new objects show up, and DuckDB pushes projections
and filters down into the pyarrow scan::

    >>> import pyarrow as pa
    >>> import pyarrow.dataset as ds
    >>> sql = DatasetSQL({"t": "t/"}, lambda source: ds.dataset(pa.table({"x": [1, 2, 3]})))
    >>> sql.query("SELECT max(x) AS s FROM t WHERE x > ?", [1]).to_pylist()
    [{'s': 3}]
    >>> sql.close()
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from sygnify.errors import (
    CircuitOpenError,
    ConfigurationError,
    DataQualityError,
    MemoryBudgetError,
    NotFoundError,
    QueryError,
    SygnifyError,
    TransientError,
)
from sygnify.io.sql import QueryParams
from sygnify.io.sql import looks_like_sql as _looks_like_any_sql
from sygnify.io.transient import transient_read_error

__all__ = [
    "DatasetSQL",
    "check_table_names",
    "close_sandbox",
    "looks_like_sql",
    "open_sandbox",
    "translate_duckdb_error",
]

#: Statements DuckDB has beyond the shared ones (:data:`sygnify.io.sql.SQL_KEYWORDS`).
DUCKDB_KEYWORDS = ("pivot", "unpivot", "summarize")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def looks_like_sql(source: str) -> bool:
    """Whether ``source`` is a DuckDB query rather than a path (:func:`sygnify.io.sql.looks_like_sql`
    with DuckDB's own statements).

    >>> looks_like_sql("FROM tx SELECT max(amount)"), looks_like_sql("tx/*.parquet")
    (True, False)
    """
    return _looks_like_any_sql(source, dialect_keywords=DUCKDB_KEYWORDS)


def check_table_names(tables: Iterable[str]) -> None:
    """Refuse a configured table name that is not a plain SQL identifier (letters, digits, _)."""
    for table in tables:
        if not _TABLE_NAME.match(table):
            raise ConfigurationError(
                f"table name {table!r} is not a plain SQL identifier (letters, digits, _)",
                resource=table,
            )


#: The prefix of the folder each sandboxed DuckDB spills to (:func:`open_sandbox`).
SPILL_PREFIX = "sygnify-duckdb-"


def _private_root() -> Path | None:
    """``<tmp>/sygnify-<uid>``, a folder only this user may enter (created ``0700`` on first
    use); None where there are no user ids, or when the folder there is not one this user
    owns alone (another user's, a link): then each database gets a folder of its own."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return None
    root = Path(tempfile.gettempdir()) / f"sygnify-{getuid()}"
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    info = root.lstat()
    if stat.S_ISDIR(info.st_mode) and info.st_uid == getuid() and not info.st_mode & 0o077:
        return root
    return None


def _spill_folder() -> str:
    """A fresh spill folder no other user can reach. Inside the private root it is only a
    name: DuckDB creates it when a query first spills, so a process killed before that
    leaves nothing behind."""
    root = _private_root()
    if root is None:
        return tempfile.mkdtemp(prefix=SPILL_PREFIX)
    return str(root / f"{SPILL_PREFIX}{uuid.uuid4().hex}")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_sandbox(
    *,
    allowed_directories: Sequence[Path] = (),
    threads: int | None = None,
    memory_limit: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that reaches no URL and no file outside ``allowed_directories``
    (the one sandbox every sygnify DuckDB runs in); close it with :func:`close_sandbox`.

    DuckDB always lets SQL reach its spill directory, by default ``.tmp`` under the process's
    working directory; here each database spills to a folder of its own instead, inside
    ``<tmp>/sygnify-<uid>`` (``0700``: no other user may enter it), made when a query first
    spills and removed by :func:`close_sandbox`, so SQL reaches nothing but its own scratch
    files. The settings are locked last, so SQL cannot lift the sandbox::

        >>> database = open_sandbox(threads=1)
        >>> database.sql("SELECT 1 + 1").fetchall()
        [(2,)]
        >>> try:
        ...     database.sql("SELECT * FROM read_csv('/etc/passwd')")
        ... except duckdb.PermissionException:
        ...     print("refused")
        refused
        >>> spill = Path(database.sql("SELECT current_setting('temp_directory')").fetchall()[0][0])
        >>> spill.name.startswith(SPILL_PREFIX), oct(spill.parent.stat().st_mode & 0o777)
        (True, '0o700')
        >>> close_sandbox(database)
        >>> spill.exists()
        False
    """
    spill = _spill_folder()
    try:
        database = duckdb.connect(":memory:")
    except BaseException:
        shutil.rmtree(spill, ignore_errors=True)
        raise
    # A connection closed without close_sandbox (or never closed) still loses its folder
    # once it is collected, or when the interpreter exits.
    weakref.finalize(database, shutil.rmtree, spill, True)
    try:
        if threads is not None:
            database.execute(f"SET threads={int(threads)}")
        if memory_limit is not None:
            database.execute(f"SET memory_limit={_quote(memory_limit)}")
        database.execute(f"SET temp_directory={_quote(spill)}")
        if allowed_directories:
            allowed = ", ".join(_quote(str(path).rstrip(os.sep) + os.sep) for path in allowed_directories)
            database.execute(f"SET allowed_directories=[{allowed}]")
        database.execute("SET enable_external_access=false")
        database.execute("SET lock_configuration=true")
    except BaseException:
        close_sandbox(database)
        raise
    return database


def close_sandbox(database: duckdb.DuckDBPyConnection) -> None:
    """Close a DuckDB from :func:`open_sandbox` and remove its spill folder (idempotent)."""
    try:
        spill = str(database.sql("SELECT current_setting('temp_directory')").fetchall()[0][0])
    except duckdb.Error:  # already closed: its folder went with the first close
        spill = ""
    database.close()
    if Path(spill).name.startswith(SPILL_PREFIX):
        shutil.rmtree(spill, ignore_errors=True)


#: pyarrow reads ahead this many fragments of a dataset scan (its ``fragment_readahead``).
FRAGMENT_READAHEAD = 4


def by_row_group(dataset: ds.Dataset) -> ds.Dataset:
    """``dataset`` with its Parquet objects split into one fragment per row group, when it
    has fewer objects than pyarrow reads ahead.

    pyarrow fetches a whole fragment's row groups as soon as a scan opens it, so
    ``SELECT * FROM t LIMIT 5`` over one large object would download all of it; split,
    it downloads the first row groups only. Tables of many objects keep one fragment per
    object (a scan stops after the first few anyway, and splitting would repeat footer reads),
    and so do datasets read through a Python filesystem (Azure: it reads in ``part_size``
    blocks per opened object, so split fragments would download the object again each).

    >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq
    >>> path = tempfile.mkdtemp() + "/t.parquet"
    >>> pq.write_table(pa.table({"x": list(range(10))}), path, row_group_size=3)
    >>> len(list(by_row_group(ds.dataset(path)).get_fragments()))
    4
    """
    if not isinstance(dataset, ds.FileSystemDataset) or not isinstance(dataset.format, ds.ParquetFileFormat):
        return dataset
    if isinstance(dataset.filesystem, pafs.PyFileSystem):
        # A Python filesystem (sygnify's SDK reads) reads in blocks of its own per opened
        # file: row-group fragments would each fetch a block, so the object stays whole.
        return dataset
    fragments = list(dataset.get_fragments())
    if not fragments or len(fragments) >= FRAGMENT_READAHEAD:
        return dataset
    split = [piece for fragment in fragments for piece in fragment.split_by_row_group()]
    if len(split) == len(fragments):
        return dataset
    return ds.FileSystemDataset(split, dataset.schema, dataset.format, dataset.filesystem)


class DatasetSQL:
    """A sandboxed in-memory DuckDB whose tables are Arrow datasets opened per query.

    ``tables`` maps SQL names to sources; ``open_dataset(source)`` returns the
    :class:`pyarrow.dataset.Dataset` for one (and raises a sygnify error if it cannot).
    """

    def __init__(
        self,
        tables: Mapping[str, str],
        open_dataset: Callable[[str], ds.Dataset],
        *,
        threads: int | None = None,
    ) -> None:
        check_table_names(tables)
        self.tables = dict(tables)
        self._open_dataset = open_dataset
        self._threads = threads
        self._lock = threading.Lock()
        self._database: duckdb.DuckDBPyConnection | None = None

    def _db(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._database is None:
                # The sandbox: no files, no network; only the registered Arrow data.
                self._database = open_sandbox(threads=self._threads)
            return self._database

    def _cursor(self, sql: str) -> duckdb.DuckDBPyConnection:
        cursor = self._db().cursor()
        try:
            for table, source in self.tables.items():
                if not re.search(rf"\b{table}\b", sql, re.IGNORECASE):
                    continue
                try:
                    dataset = self._open_dataset(source)
                except NotFoundError as exc:
                    raise type(exc)(
                        f"table {table!r} is configured as {source!r}, but no data objects match it "
                        f"({exc.message})",
                        resource=table,
                    ) from exc
                except (TransientError, CircuitOpenError):
                    raise  # as they are, so the query is retried or refused
                except SygnifyError as exc:
                    raise type(exc)(f"table {table!r}: {exc.message}", resource=table) from exc
                cursor.register(table, by_row_group(dataset))
        except BaseException:
            cursor.close()
            raise
        return cursor

    def _relation(
        self, cursor: duckdb.DuckDBPyConnection, sql: str, params: QueryParams
    ) -> duckdb.DuckDBPyRelation:
        try:
            relation = cursor.sql(sql, params=params)
        except duckdb.Error as exc:
            raise translate_duckdb_error(exc, f"query failed: {exc}", sql) from exc
        if relation is None:
            raise QueryError("the statement returns no rows; query() and stream() need a query", resource=sql)
        return relation

    def query(self, sql: str, params: QueryParams = None) -> pa.Table:
        """Run ``sql`` with ``?``/``$name`` parameters and return the whole result."""
        cursor = self._cursor(sql)
        try:
            relation = self._relation(cursor, sql, params)
            try:
                return relation.to_arrow_table()
            except duckdb.Error as exc:
                raise translate_duckdb_error(exc, f"query failed: {exc}", sql) from exc
        finally:
            cursor.close()

    def stream(self, sql: str, params: QueryParams, batch_size: int) -> Iterator[pa.RecordBatch]:
        """Yield the result of ``sql`` batch by batch (the cursor lives as long as the iterator)."""
        cursor = self._cursor(sql)
        try:
            reader = self._relation(cursor, sql, params).to_arrow_reader(batch_size)
            try:
                yield from reader
            except duckdb.Error as exc:
                raise translate_duckdb_error(exc, f"query failed: {exc}", sql) from exc
        finally:
            cursor.close()

    def close(self) -> None:
        with self._lock:
            if self._database is not None:
                close_sandbox(self._database)
                self._database = None


#: Words in DuckDB's messages about data it cannot read (rather than SQL it cannot run).
_DATA_WORDS = ("magic bytes", "Parquet", "parquet", "CSV", "sniffing", "JSON", "Invalid:", "IOError:")


def translate_duckdb_error(exc: Exception, message: str, resource: str | None) -> SygnifyError:
    """Map a DuckDB exception onto the sygnify error tree (the one map for every DuckDB).

    Out of memory is a :class:`~sygnify.errors.MemoryBudgetError`; a throttled or dropped
    store request under the scan a :class:`~sygnify.errors.TransientError`
    (:func:`sygnify.io.transient.transient_read_error`, so the query is retried); an unknown table or a
    missing file a :class:`~sygnify.errors.NotFoundError`; data DuckDB cannot read or
    convert a :class:`~sygnify.errors.DataQualityError`; the sandbox refusing a file or URL,
    and any other failure, a :class:`~sygnify.errors.QueryError`.

    >>> type(translate_duckdb_error(duckdb.ConversionException("bad date"), "query failed", None)).__name__
    'DataQualityError'
    """
    text = str(exc)
    if isinstance(exc, duckdb.OutOfMemoryException):
        return MemoryBudgetError(message, resource=resource)
    # A store failure while DuckDB read an Arrow dataset reaches us as text only.
    transient = transient_read_error(text, message, resource)
    if transient is not None:
        return transient
    if isinstance(exc, duckdb.CatalogException) and "does not exist" in text:
        return NotFoundError(
            f"{message} (check the name against the connection's `tables`)", resource=resource
        )
    if isinstance(exc, duckdb.IOException) and ("No files found" in text or "No such file" in text):
        return NotFoundError(message, resource=resource)
    if isinstance(exc, duckdb.PermissionException):
        return QueryError(
            f"{message} (SQL cannot read files or URLs directly; declare them in `tables`)", resource=resource
        )
    if isinstance(exc, duckdb.ConversionException | duckdb.IOException) or (
        isinstance(exc, duckdb.InvalidInputException) and any(word in text for word in _DATA_WORDS)
    ):
        return DataQualityError(message, resource=resource)
    return QueryError(message, resource=resource)
