"""The ``local`` connector's DuckDB: sandboxed to the root, tables as views over its files.

DuckDB may open files only under the root (``allowed_directories``), with external access
off, its spill folder private and the settings locked so SQL cannot lift the sandbox. Each
configured table is a view over the files that the one glob
(:func:`sygnify.io.files.find_files`) finds, named one by one, never a pattern DuckDB would
expand by its own rules (which read hidden and temporary names); the connector rebuilds the
views before each query, so new files show up::

    >>> import tempfile
    >>> from pathlib import Path
    >>> import pyarrow as pa
    >>> import pyarrow.parquet as pq
    >>> root = Path(tempfile.mkdtemp()).resolve()
    >>> pq.write_table(pa.table({"x": [1, 2]}), root / "t.parquet")
    >>> database = open_sandboxed_database(root, threads=1, memory_limit=None)
    >>> database.sql(f"SELECT sum(x) AS s FROM ({table_sql(root, 't.parquet')})").fetchall()
    [(3,)]
    >>> try:
    ...     database.sql("SELECT * FROM read_csv('/etc/passwd')")
    ... except duckdb.Error as exc:
    ...     type(translate_local_error(exc, "query failed", None)).__name__
    'PathEscapeError'
    >>> close_sandboxed_database(database)
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from sygnify.connectors.local.paths import data_files, single_format
from sygnify.errors import PathEscapeError, SygnifyError
from sygnify.io.arrow import translate_read_error
from sygnify.io.duckdb import close_sandbox, open_sandbox, translate_duckdb_error
from sygnify.io.formats import FileFormat
from sygnify.io.partitions import duckdb_hive_types, local_partition_schema
from sygnify.io.schemas import SchemaDrift

__all__ = [
    "close_sandboxed_database",
    "open_sandboxed_database",
    "rooted_sql",
    "select_sql",
    "table_files",
    "table_sql",
    "translate_local_error",
]

_READERS = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json_auto", "ipc": "read_arrow"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_sandboxed_database(
    root: Path, *, threads: int | None, memory_limit: str | None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can read files under ``root`` and nowhere else (it spills to a
    private folder of its own: :func:`sygnify.io.duckdb.open_sandbox`); close it with
    :func:`close_sandboxed_database`."""
    return open_sandbox(allowed_directories=[root], threads=threads, memory_limit=memory_limit)


def close_sandboxed_database(database: duckdb.DuckDBPyConnection) -> None:
    """Close a database from :func:`open_sandboxed_database` and remove its spill folder."""
    close_sandbox(database)


def table_files(root: Path, source: str) -> tuple[list[str], Path | None, FileFormat]:
    """The data files ``source`` names now, the directory of their hive partitions, and their format.

    The files are listed by :func:`~sygnify.connectors.local.paths.data_files`, the listing
    ``scan()`` and ``stream()`` use, so SQL reads exactly what they read. No data files is
    a :class:`~sygnify.errors.NotFoundError`.
    """
    files, directory = data_files(root, source)
    return files, directory, single_format(files, source, None)


def select_sql(
    files: list[str], directory: Path | None, fmt: FileFormat, drift: SchemaDrift = "error"
) -> str:
    """A SELECT over ``files``, named one by one (a directory's ``key=value`` subdirectories
    are hive partition columns).

    Any ``drift`` but ``"error"`` reads by name (DuckDB's ``union_by_name=true``); the
    connector checks the files' schemas against ``drift`` before it uses the SELECT
    (:func:`sygnify.io.schemas.reconcile_schemas`), which DuckDB does not do.
    """
    options = ""
    if directory is not None and fmt in ("parquet", "csv"):
        # The partition types every reader uses (sygnify.io.partitions); DuckDB decodes the values.
        types = duckdb_hive_types(local_partition_schema(directory, files))
        pinned = ", ".join(f"{_quote(name)}: {type}" for name, type in types.items())
        options = ", hive_partitioning=true" + (f", hive_types={{{pinned}}}" if pinned else "")
    if drift != "error" and fmt in ("parquet", "csv", "json"):
        options += ", union_by_name=true"
    return f"SELECT * FROM {_READERS[fmt]}([{', '.join(map(_quote, files))}]{options})"


def table_sql(root: Path, source: str, *, drift: SchemaDrift = "error") -> str:
    """A SELECT over the data files ``source`` names now (a file, a directory or a glob).

    :func:`table_files` then :func:`select_sql`; build it again for each query to see new
    files.
    """
    return select_sql(*table_files(root, source), drift)


# A quoted path read as a table (FROM 'x.parquet', JOIN 'dir/'), or a reader's first argument.
_FROM_PATH = re.compile(r"(?i)(\b(?:FROM|JOIN)\s+)'((?:[^']|'')+)'")
_READER_PATH = re.compile(
    r"(?i)(\bread_(?:parquet|csv|csv_auto|json|json_auto|ndjson)\s*\(\s*)'((?:[^']|'')+)'"
)


def rooted_sql(root: Path, sql: str) -> str:
    """``sql`` with the files it names by quoted relative path resolved under ``root``.

    DuckDB resolves relative paths against the process's working directory; here a quoted
    path after ``FROM``/``JOIN`` becomes a SELECT over the files the one glob finds there
    (:func:`table_sql`: a file, a directory with hive partitions, or a glob, hidden files
    skipped, commit logs honoured), and a ``read_parquet('...')``/``read_csv('...')`` first
    argument becomes the absolute path. Paths that match nothing are left as they are (DuckDB
    then names them), and so are absolute paths and URLs::

        >>> import tempfile
        >>> import pyarrow as pa, pyarrow.parquet as pq
        >>> root = Path(tempfile.mkdtemp()).resolve()
        >>> pq.write_table(pa.table({"x": [1]}), root / "t.parquet")
        >>> rooted_sql(root, "SELECT count(*) FROM 't.parquet' AS t")[:33]
        'SELECT count(*) FROM (SELECT * FR'
        >>> rooted_sql(root, "SELECT * FROM read_csv('a.csv', header=true)") == (
        ...     f"SELECT * FROM read_csv('{root}/a.csv', header=true)")
        True
    """

    def relative(text: str) -> str | None:
        path = text.replace("''", "'")
        return None if path.startswith("/") or "://" in path else path

    def table(match: re.Match[str]) -> str:
        path = relative(match.group(2))
        if path is None:
            return match.group(0)
        try:
            return f"{match.group(1)}({table_sql(root, path)})"
        except SygnifyError:  # matches nothing (or escapes root): DuckDB says so
            return match.group(0)

    def reader(match: re.Match[str]) -> str:
        path = relative(match.group(2))
        if path is None:
            return match.group(0)
        return f"{match.group(1)}{_quote(str(root / path))}"

    return _READER_PATH.sub(reader, _FROM_PATH.sub(table, sql))


def translate_local_error(exc: Exception, message: str, resource: str | None) -> SygnifyError:
    """Map a DuckDB, Arrow, Polars or OS exception from local files onto the sygnify error tree.

    DuckDB's own map (:func:`sygnify.io.duckdb.translate_duckdb_error`) and Arrow's
    (:func:`sygnify.io.arrow.translate_read_error`), plus what only a local root has: the
    sandbox refusing a path is a :class:`~sygnify.errors.PathEscapeError`.
    """
    if isinstance(exc, duckdb.PermissionException):
        return PathEscapeError(
            f"{message} (only files under the connector root are reachable)", resource=resource
        )
    if isinstance(exc, duckdb.Error):
        return translate_duckdb_error(exc, message, resource)
    return translate_read_error(exc, message, resource) or SygnifyError(message, resource=resource)
