"""Snowflake: parameterized SQL, Arrow batch streaming of a predictable size, Parquet bulk loads.

Most of the connector comes from the shared SQL layer
(:class:`~sygnify.connectors._sql.connector.SqlConnector`): the pool (the connector's
connections are not thread-safe, so each is checked out by one user at a time; connections
of equal configuration are shared), parameter binding (``?`` with a sequence, ``:name`` /
``$name`` with a mapping; values are bound server-side, never formatted into the SQL),
exact-size streaming and scan pushdown. What is Snowflake's own is declared here: how to
connect and run a statement, integer widening, ``DESCRIBE`` schemas, and the Parquet
``PUT`` + ``COPY INTO`` load with its own transaction (:mod:`~sygnify.connectors.snowflake.load`).
Example (needs a Snowflake account or a fakesnow server)::

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

import importlib
import shutil
import tempfile
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from sygnify.connectors._sql.connector import Result, SqlConnector
from sygnify.connectors._sql.names import TableName, quote_identifier
from sygnify.connectors._sql.pool import ConnectionPool
from sygnify.connectors._sql.scan import SqlDialect
from sygnify.connectors.base import Capability, QueryParams, WriteMode
from sygnify.connectors.snowflake.compat import SnowflakeConnectionPool, named_to_qmark
from sygnify.connectors.snowflake.config import SnowflakeConfig, connect_arguments
from sygnify.connectors.snowflake.errors import (
    PoolExhaustedError,
    is_connection_failure,
    translate_snowflake_error,
)
from sygnify.connectors.snowflake.load import StagedWrite, copy_into_table, prepare_write
from sygnify.connectors.snowflake.types import described_schema, snowflake_type, widen_integers
from sygnify.errors import ConfigurationError, OperationTimeoutError, SygnifyError
from sygnify.io.arrow import DEFAULT_BATCH_SIZE, rebatch

# Configuration, type mapping, loads and error translation live in their own modules; their
# public names are re-exported here, where users import them from. SnowflakeConnectionPool
# and named_to_qmark are the deprecated names of what the shared SQL layer now does.
__all__ = [
    "DIALECT",
    "PoolExhaustedError",
    "SnowflakeConfig",
    "SnowflakeConnectionPool",
    "SnowflakeConnector",
    "connect_arguments",
    "named_to_qmark",
    "quote_identifier",
    "snowflake_type",
    "translate_snowflake_error",
]

Data = TypeVar("Data", pa.Table, pa.RecordBatch)

#: Double-quoted identifiers, ``?`` placeholders, unquoted names folded to upper case.
DIALECT = SqlDialect(quote=quote_identifier, placeholder=lambda _name, _index: "?", fold=str.upper)


class _SnowflakePool(ConnectionPool):
    """The shared pool, whose checkout timeout is a :class:`PoolExhaustedError` (never retried)."""

    def checkout(self) -> Any:
        try:
            return super().checkout()
        except OperationTimeoutError as exc:
            # The pool's own wait is the one deadline: a retry would wait on the same holders.
            raise PoolExhaustedError(exc.message, resource=exc.resource) from None


class SnowflakeConnector(SqlConnector[SnowflakeConfig]):
    """Snowflake SQL and tables as Arrow, with Parquet bulk loads and a connection pool."""

    type_name = "snowflake"
    capabilities = frozenset(
        {Capability.READABLE, Capability.QUERYABLE, Capability.WRITABLE, Capability.CATALOG}
    )
    config_model = SnowflakeConfig
    dialect = DIALECT
    param_style = "qmark"
    backslash_escapes = True  # Snowflake reads \' as a quote inside every string
    list_tables_sql = (
        "SELECT table_schema, table_name, table_schema = current_schema() "
        "FROM information_schema.tables WHERE table_schema <> 'INFORMATION_SCHEMA'"
    )

    def _new_pool(self) -> ConnectionPool:
        return _SnowflakePool(
            self._connect,
            kind=self.type_name,
            size=self.config.pool_size,
            checkout_timeout=self.config.checkout_timeout,
            is_failure=self._is_connection_failure,
        )

    def _connect(self) -> Any:
        connector: Any = importlib.import_module("snowflake.connector")
        return connector.connect(**connect_arguments(self.config))

    def _run(self, connection: Any, sql: str, params: list[Any] | None) -> Any:
        """A cursor that has executed ``sql`` (closed again when that fails)."""
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params, timeout=self.config.query_timeout)
        except BaseException:
            cursor.close()
            raise
        return cursor

    def _open_reader(self, connection: Any, sql: str, params: list[Any] | None) -> Result:
        cursor = self._run(connection, sql, params)

        def batches() -> Iterator[pa.RecordBatch]:
            # Server result chunks come in whatever sizes Snowflake chose; the base re-chunks them.
            for table in cursor.fetch_arrow_batches():
                yield from table.to_batches()

        return Result(described_schema(cursor.description), batches(), cursor.close)

    def _read_table(self, connection: Any, sql: str, params: list[Any] | None) -> pa.Table:
        cursor = self._run(connection, sql, params)
        try:
            # Not fetch_arrow_all: the driver reaches pyarrow there through its pandas extra, which
            # the snowflake extra does not install; the result batches need only pyarrow.
            tables = [widen_integers(table) for table in cursor.fetch_arrow_batches()]
            if not tables:
                return described_schema(cursor.description).empty_table()
            return pa.concat_tables(tables)
        finally:
            cursor.close()

    def stream(
        self,
        source: str,
        *,
        params: QueryParams = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: Sequence[str] | None = None,
    ) -> Generator[pa.RecordBatch, None, None]:
        """Yield a query's result or a table's rows in batches of exactly ``batch_size`` rows.

        The statement runs, and its first batch is read, when ``stream`` is called: a missing
        table or bad SQL raises here, not at the first ``next()``. An empty result yields one
        empty batch that carries the result's schema. One pooled connection is held until the
        iterator is exhausted, closed or dropped; an error while rows arrive is translated but
        not retried (a restart would repeat rows the caller already has).
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}", resource=source)
        sql, values = self._statement(source, params, columns)
        connection, result = self._call("stream", self._open, sql, values, resource=source)
        batches = rebatch(self._translate_stream(self._drain(connection, result), source), batch_size)
        # Read the first batch now; dropping the iterator unread still closes the result and
        # returns the connection (the generators' finally clauses run when they are collected).
        first = next(batches, None)
        return self._delivered(first, batches, result.schema)

    @staticmethod
    def _delivered(
        first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch], schema: pa.Schema
    ) -> Generator[pa.RecordBatch, None, None]:
        if first is None:
            yield pa.RecordBatch.from_pylist([], schema=schema)
            return
        yield first
        yield from rest

    def _execute_statement(self, connection: Any, sql: str, params: list[Any] | None) -> int:
        cursor = self._run(connection, sql, params)
        try:
            return int(cursor.rowcount or 0)
        finally:
            cursor.close()

    def _normalize(self, data: Data) -> Data:
        return widen_integers(data)

    def _table_schema(self, connection: Any, target: TableName) -> pa.Schema:
        cursor = connection.cursor()
        try:
            return described_schema(cursor.describe(f"SELECT * FROM {target.sql}"))
        finally:
            cursor.close()

    def _is_connection_failure(self, exc: BaseException) -> bool:
        return is_connection_failure(exc)

    def _health_detail(self) -> str:
        return f"account {self.config.account}"

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        return translate_snowflake_error(exc, f"snowflake {operation} failed", resource)

    # -- writes: Parquet PUT + COPY INTO, with the load's own transaction ------------------

    def _load_table(self, table: pa.Table, target: TableName, mode: WriteMode, *, resource: str) -> int:
        """Stage ``table`` as Parquet once, then ``COPY`` it in (retried as a whole).

        Like ``write_pandas``: the data is written as Parquet, ``PUT`` to a temporary stage
        and copied in by column name. A missing table is created from the data's schema with
        case-preserving (quoted) column names; list and struct columns become ARRAY and
        OBJECT. ``overwrite`` deletes the old rows and loads the new ones in one transaction.
        A retry never loads the rows twice: every attempt stages the same file under the same
        name, and ``COPY`` skips a file it has already loaded.
        """
        staging = Path(tempfile.mkdtemp(prefix="sygnify-snowflake-"))
        try:
            # One stage, file name and Parquet file for every attempt of this write.
            staged = prepare_write(table, staging, row_group_rows=self.config.parquet_row_group_rows)
            return self._call("write", self._copy_staged, staged, target, mode, resource=resource)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _copy_staged(self, staged: StagedWrite, target: TableName, mode: WriteMode) -> int:
        with self._connections.connection() as connection:
            cursor = connection.cursor()
            try:
                return copy_into_table(cursor, staged, target, mode)
            finally:
                cursor.close()

    # -- catalog --------------------------------------------------------------------------

    def list(self, prefix: str = "") -> list[str]:
        """Tables of the current database as ``SCHEMA.TABLE``, and bare ``TABLE`` for those in the
        current schema; ``prefix`` matches regardless of case (unquoted names are upper case)."""
        return [name for name in super().list() if name.upper().startswith(prefix.upper())]
