"""Snowflake: parameterized SQL, Arrow batch streaming of a predictable size, Parquet bulk loads.

The connector's connections are not thread-safe, so each ``SnowflakeConnector`` draws
them from a small pool (checkout/return; connections of equal configuration are shared).
Values are bound server-side (``?`` placeholders, or ``:name`` with a mapping), never
formatted into the SQL. Example (needs a Snowflake account or a fakesnow server)::

    from sygnify import CloudDataConnector

    with CloudDataConnector() as connector:
        sf = connector.connect("snowflake", account="xy12345.eu-west-1", user="ETL",
                               private_key_file="rsa_key.p8", private_key_file_pwd="...",
                               warehouse="LOAD_WH", database="SALES", schema="PUBLIC", role="LOADER")
        for batch in sf.stream("SELECT * FROM orders WHERE region = :r", params={"r": "EU"},
                               batch_size=50_000):
            ...
        sf.write(frame, "ORDERS_COPY", mode="overwrite")
        top = sf.scan("ORDERS").filter(pl.col("AMOUNT") > 100).select("ID").collect()
"""

from __future__ import annotations

import contextlib
import importlib
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sygnify.config import config_fingerprint
from sygnify.connectors._sql.pool import SnowflakeConnectionPool, is_connection_failure
from sygnify.connectors._sql.scan import Pushdown, SqlDialect, scan_sql_table, select_sql
from sygnify.connectors.base import BaseConnector, QueryParams, WriteMode, WriteResult
from sygnify.connectors.pool import ClientPool
from sygnify.connectors.snowflake.config import SnowflakeConfig, connect_arguments
from sygnify.connectors.snowflake.errors import translate_snowflake_error
from sygnify.connectors.snowflake.load import copy_into_table, new_load_id, staged_file_name
from sygnify.connectors.snowflake.params import bind_params, named_to_qmark
from sygnify.connectors.snowflake.types import (
    quote_identifier,
    result_arrow_type,
    snowflake_type,
    widen_integers,
)
from sygnify.errors import ConfigurationError, SchemaError, SygnifyError
from sygnify.io.arrow import DEFAULT_BATCH_SIZE, rebatch, to_arrow_table

# Configuration, pooling, parameter binding, type mapping, loads and error translation live
# in private modules; their public names are re-exported here, where users import them from.
__all__ = [
    "DIALECT",
    "SnowflakeConfig",
    "SnowflakeConnectionPool",
    "SnowflakeConnector",
    "connect_arguments",
    "named_to_qmark",
    "quote_identifier",
    "snowflake_type",
    "translate_snowflake_error",
]

_SQL_START = re.compile(r"^\s*(\(|select\b|with\b|show\b|describe\b|desc\b)", re.I)
_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_TABLE_NAME = re.compile(rf"^{_PART}(?:\.{_PART}){{0,2}}$")

DIALECT = SqlDialect(quote=quote_identifier, placeholder=lambda _name, _index: "?")


def _listed_name(table_sql: str) -> str:
    """How ``list()`` names a table: ``SCHEMA.TABLE`` or ``TABLE``, unquoted parts upper-cased."""
    parts = re.findall(_PART, table_sql)
    names = [part[1:-1].replace('""', '"') if part.startswith('"') else part.upper() for part in parts]
    return ".".join(names[-2:])


class SnowflakeConnector(BaseConnector[SnowflakeConfig]):
    """Snowflake SQL and tables as Arrow, with Parquet bulk loads and a connection pool."""

    type_name = "snowflake"
    config_model = SnowflakeConfig

    def __init__(self, config: SnowflakeConfig, *, name: str | None = None, pool: ClientPool | None = None):
        super().__init__(config, name=name, pool=pool)
        self._pool_key = config_fingerprint(config, exclude=frozenset({"retry", "breaker"}))
        self._connections: SnowflakeConnectionPool = self._pool.acquire(
            self._pool_key, self._new_pool, SnowflakeConnectionPool.close
        )

    def _new_pool(self) -> SnowflakeConnectionPool:
        config = self.config
        connector: Any = importlib.import_module("snowflake.connector")

        def connect() -> Any:
            return connector.connect(**connect_arguments(config))

        return SnowflakeConnectionPool(
            connect, size=config.pool_size, checkout_timeout=config.checkout_timeout
        )

    @property
    def pool(self) -> SnowflakeConnectionPool:
        """The pool of connections this connection draws from."""
        return self._connections

    # -- execution ------------------------------------------------------------------------

    def _execute(self, sql: str, params: QueryParams) -> tuple[Any, Any]:
        """One attempt: check out a connection and execute; returns (connection, cursor)."""
        statement, bound = bind_params(sql, params)
        connection = self._connections.checkout()
        try:
            cursor = connection.cursor()
            cursor.execute(statement, bound, timeout=self.config.query_timeout)
        except Exception as exc:
            self._connections.checkin(connection, discard=is_connection_failure(exc))
            raise
        return connection, cursor

    def _batches(self, connection: Any, cursor: Any, source: str) -> Iterator[pa.RecordBatch]:
        failed = False
        try:
            for table in cursor.fetch_arrow_batches():
                for batch in table.to_batches():
                    yield widen_integers(batch)
        except Exception as exc:
            failed = is_connection_failure(exc)
            if isinstance(exc, SygnifyError):
                raise
            raise self._translate(exc, operation="stream", resource=source) from exc
        finally:
            with contextlib.suppress(Exception):
                cursor.close()
            self._connections.checkin(connection, discard=failed)

    def execute(self, sql: str, params: QueryParams = None) -> int:
        """Run a statement that returns no rows (DDL, DML); returns the rows it affected."""

        def run() -> int:
            connection, cursor = self._execute(sql, params)
            try:
                return int(cursor.rowcount or 0)
            finally:
                cursor.close()
                self._connections.checkin(connection)

        return self._call("execute", run, resource=sql)

    def query(self, sql: str, params: QueryParams = None) -> pa.Table:
        """Run SQL with ``?`` (sequence) or ``:name`` (mapping) parameters; the whole result."""

        def run() -> pa.Table:
            connection, cursor = self._execute(sql, params)
            failed = False
            try:
                table = cursor.fetch_arrow_all(force_return_table=True)
                batches = [widen_integers(batch) for batch in table.to_batches()]
                return pa.Table.from_batches(batches, schema=batches[0].schema if batches else table.schema)
            except Exception as exc:
                failed = is_connection_failure(exc)
                raise
            finally:
                with contextlib.suppress(Exception):
                    cursor.close()
                self._connections.checkin(connection, discard=failed)

        return self._call("query", run, resource=sql)

    def table_sql(self, name: str) -> str:
        """A validated table reference: unquoted parts follow Snowflake's case rules, quoted ones are kept."""
        name = name.strip()
        if not _TABLE_NAME.match(name):
            raise ConfigurationError(
                f"{name!r} is not a table name: use [db.][schema.]table with plain identifiers, or "
                'double-quote a part ("My Table")',
                resource=name,
            )
        return name

    def stream(
        self,
        source: str,
        *,
        params: QueryParams = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: Sequence[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield a query's result or a table's rows in batches of exactly ``batch_size`` rows.

        Server result chunks come in whatever sizes Snowflake chose; they are re-chunked
        (zero-copy slices) so every batch but the last has ``batch_size`` rows. A pooled
        connection is held until the iterator is exhausted or closed.
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        if _SQL_START.match(source):
            if columns:
                raise ConfigurationError("columns applies to table sources; select them in the SQL")
            sql = source
        else:
            if params:
                raise ConfigurationError("params apply to SQL sources only", resource=source)
            sql = select_sql(
                self.table_sql(source), list(columns) if columns else None, Pushdown(), None, DIALECT
            )
        connection, cursor = self._call("query", self._execute, sql, params, resource=source)
        yield from rebatch(self._batches(connection, cursor, source), batch_size)

    def scan(self, source: str, *, batch_size: int = DEFAULT_BATCH_SIZE, **options: Any) -> pl.LazyFrame:
        """A LazyFrame over a table; selected columns, simple filters and limits run in Snowflake."""
        if options:
            raise ConfigurationError(f"unknown scan options: {', '.join(sorted(options))}", resource=source)
        table = self.table_sql(source)

        def describe() -> pl.Schema:
            with self._connections.connection() as connection:
                cursor = connection.cursor()
                try:
                    metadata = cursor.describe(f"SELECT * FROM {table}")
                finally:
                    cursor.close()
            arrow_schema = pa.schema(
                [(m.name, result_arrow_type(m.type_code, m.precision, m.scale)) for m in metadata or []]
            )
            frame = pl.from_arrow(arrow_schema.empty_table())
            assert isinstance(frame, pl.DataFrame)
            return frame.schema

        schema = self._call("scan", describe, resource=source)

        def fetch(
            columns: list[str] | None, pushdown: Pushdown, limit: int | None, size: int
        ) -> Iterator[pa.RecordBatch]:
            sql = select_sql(table, columns, pushdown, limit, DIALECT)
            return self.stream(sql, params=[param.value for param in pushdown.params], batch_size=size)

        return scan_sql_table(schema, fetch, DIALECT, batch_size=batch_size, name=f"snowflake:{table}")

    # -- writes ---------------------------------------------------------------------------

    def write(self, data: Any, target: str, *, mode: WriteMode = "append") -> WriteResult:
        """Bulk-load Arrow/Polars/pandas data into a table (Parquet upload + ``COPY INTO``).

        Like ``write_pandas``: the data is written as Parquet, ``PUT`` to a temporary
        stage and copied in by column name. A missing table is created from the data's
        schema with case-preserving (quoted) column names; list and struct columns become
        ARRAY and OBJECT. ``overwrite`` deletes the old rows and loads the new ones in one
        transaction. A retry never loads the rows twice: every attempt stages the same file
        under the same name, and ``COPY`` skips a file it has already loaded.
        """
        if mode not in ("append", "overwrite"):
            raise ConfigurationError(f"mode must be 'append' or 'overwrite', got {mode!r}", resource=target)
        table = to_arrow_table(data)
        table_sql = self.table_sql(target)
        columns = [(field.name, snowflake_type(field.name, field.type)) for field in table.schema]
        if not columns:
            raise SchemaError("the data has no columns", resource=target)
        load_id = new_load_id()  # one stage and file name for every attempt of this write
        staging = Path(tempfile.mkdtemp(prefix="sygnify-snowflake-"))
        try:
            path = staging / staged_file_name(load_id)
            pq.write_table(table, path, row_group_size=self.config.parquet_row_group_rows)
            rows = self._call(
                "write", self._load, path, table_sql, columns, mode, table.num_rows, load_id, resource=target
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return WriteResult(target=target, rows=rows, paths=[_listed_name(table_sql)])

    def _load(
        self,
        path: Path,
        table_sql: str,
        columns: list[tuple[str, str]],
        mode: WriteMode,
        expected: int,
        load_id: str,
    ) -> int:
        with self._connections.connection() as connection:
            cursor = connection.cursor()
            try:
                return copy_into_table(cursor, path, table_sql, columns, mode, expected, load_id)
            finally:
                cursor.close()

    # -- catalog and lifecycle ------------------------------------------------------------

    def list(self, prefix: str = "") -> list[str]:
        """Tables of the current database as ``SCHEMA.TABLE`` (and bare names in the current schema)."""

        def tables() -> list[str]:
            result = self.query(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema <> 'INFORMATION_SCHEMA'"
            )
            current = (self.config.schema_ or "").upper()
            names: set[str] = set()
            for schema_name, table_name in zip(result.column(0).to_pylist(), result.column(1).to_pylist()):
                names.add(f"{schema_name}.{table_name}")
                if schema_name.upper() == current:
                    names.add(str(table_name))
            return sorted(name for name in names if name.upper().startswith(prefix.upper()))

        return tables()

    def close(self) -> None:
        if not self._closed:
            self._pool.release(self._pool_key)
        super().close()

    def _check_health(self) -> str:
        with self._connections.connection() as connection:
            cursor = connection.cursor()
            try:
                cursor.execute("SELECT 1")
                cursor.fetchall()
            finally:
                cursor.close()
        return f"account {self.config.account}"

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        return translate_snowflake_error(exc, f"snowflake {operation} failed", resource)
