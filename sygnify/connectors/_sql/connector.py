"""The stream/scan/write skeleton every SQL connector stands on.

A SQL connector is mostly declarations: its ``dialect`` and ``param_style``, how to open a
connection (``_connect``), how to run a query to Arrow (``_open_reader``, optionally a faster
``_read_table``), how to run a statement (``_execute_statement``), how to bulk-load a table
(``_bulk_load``, or a whole ``_load_table`` with its own transaction), which exceptions break
a connection (``_is_connection_failure``) and its error map (``_translate``).
:class:`SqlConnector` derives the rest for all of them:

- ``query(sql, params)``: the whole result as one :class:`pyarrow.Table`;
- ``stream(source, ...)``: a query's result or a table's rows in batches of exactly
  ``batch_size`` rows, holding one pooled connection until the iterator ends;
- ``scan(table)``: a Polars ``LazyFrame`` whose columns, simple filters and limit run in
  the database (:mod:`sygnify.connectors._sql.scan`);
- ``write(data, table, mode=...)``: a bulk load in one transaction, so ``overwrite`` is
  atomic and a failed attempt leaves nothing behind; a retry is safe because it comes
  only after a rollback (a connection lost *during* ``COMMIT`` is reported, not retried);
- ``execute(sql, params)``, ``list(prefix)``, ``health()`` and ``close()``.

Parameters are given as ``?`` with a sequence or ``:name`` / ``$name`` with a mapping, and
rewritten to the driver's style (:mod:`sygnify.connectors._sql.params`); values are always
bound by the driver. Every statement is logged at DEBUG on the ``sygnify.connectors.sql``
logger (the SQL only: values travel separately and are never logged).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import polars as pl
import pyarrow as pa

from sygnify.config import ConnectorConfig
from sygnify.connectors._sql.batches import exact_batches
from sygnify.connectors._sql.names import TableName, parse_table_name
from sygnify.connectors._sql.params import ParamStyle, bind_params
from sygnify.connectors._sql.pool import ConnectionPool
from sygnify.connectors._sql.scan import Pushdown, SqlDialect, scan_sql_table, select_sql
from sygnify.connectors.base import BaseConnector, Capability, QueryParams, WriteMode, WriteResult
from sygnify.connectors.pool import ClientPool
from sygnify.errors import ConfigurationError, JobFailedError, SchemaError
from sygnify.io.arrow import DEFAULT_BATCH_SIZE, to_arrow_table
from sygnify.io.sql import looks_like_sql
from sygnify.resilience import Resilience

__all__ = ["Result", "SqlConnector", "logger"]

#: Where every statement a SQL connector sends is logged (DEBUG; never the values).
logger = logging.getLogger("sygnify.connectors.sql")

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)
Data = TypeVar("Data", pa.Table, pa.RecordBatch)


@dataclass(frozen=True)
class Result:
    """An executed query's result: its schema, its batches (read lazily) and how to release it."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    close: Callable[[], None]


class SqlConnector(BaseConnector[ConfigT]):
    """Shared machinery of SQL connectors; a subclass declares what differs (module docstring).

    The config model should have ``pool_size`` and ``checkout_timeout`` fields (defaults 4
    and 60 s are used where it has not).
    """

    capabilities = frozenset(
        {Capability.READABLE, Capability.QUERYABLE, Capability.WRITABLE, Capability.CATALOG}
    )
    dialect: ClassVar[SqlDialect]
    param_style: ClassVar[ParamStyle] = "qmark"
    #: Whether every string literal takes backslash escapes (see ``bind_params``).
    backslash_escapes: ClassVar[bool] = False
    #: How many dotted parts a table name may have (``[db.]schema.table``: 3).
    table_name_parts: ClassVar[int] = 3
    #: SQL listing tables as rows of (schema, table, in the current schema?).
    list_tables_sql: ClassVar[str] = (
        "SELECT table_schema, table_name, table_schema = current_schema() "
        "FROM information_schema.tables WHERE table_schema <> 'information_schema'"
    )

    def __init__(self, config: ConfigT, *, name: str | None = None, pool: ClientPool | None = None):
        super().__init__(config, name=name, pool=pool)
        self._connections: ConnectionPool = self._shared(self._new_pool, ConnectionPool.close)
        # For statements that may change data: one attempt, the same breaker.
        self._once = Resilience(
            retry=dataclasses.replace(self._resilience.retry, max_attempts=1), breaker=self.breaker
        )

    def _new_pool(self) -> ConnectionPool:
        return ConnectionPool(
            self._connect,
            kind=self.type_name,
            size=int(getattr(self.config, "pool_size", 4)),
            checkout_timeout=float(getattr(self.config, "checkout_timeout", 60.0)),
            is_failure=self._is_connection_failure,
        )

    @property
    def pool(self) -> ConnectionPool:
        """The pool of connections this connection draws from (shared by equal configurations)."""
        return self._connections

    # -- what a SQL connector declares ----------------------------------------------------

    @abc.abstractmethod
    def _connect(self) -> Any:
        """Open one DB-API connection (autocommit on: ``write`` opens its own transactions)."""

    @abc.abstractmethod
    def _open_reader(self, connection: Any, sql: str, params: list[Any] | None) -> Result:
        """Execute a query (errors such as a missing table raise here) and return its result."""

    @abc.abstractmethod
    def _execute_statement(self, connection: Any, sql: str, params: list[Any] | None) -> int:
        """Run a statement that returns no rows; the rows it affected (0 when unknown)."""

    def _bulk_load(self, connection: Any, table: pa.Table, target: TableName, mode: WriteMode) -> int:
        """Inside the open transaction: create ``target`` if missing, empty it for
        ``overwrite``, load ``table``; return the rows loaded.

        Every connector declares this, unless it overrides :meth:`_load_table` with a load
        that runs its own transaction.
        """
        raise NotImplementedError(f"{type(self).__name__} declares neither _bulk_load nor _load_table")

    def _is_connection_failure(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the connection is broken (it is then closed, not reused)."""
        return False

    def _read_table(self, connection: Any, sql: str, params: list[Any] | None) -> pa.Table:
        """A whole result; drivers with a faster path than reading the batches override this."""
        result = self._open_reader(connection, sql, params)
        try:
            return pa.Table.from_batches(list(result.batches), schema=result.schema)
        finally:
            result.close()

    def _normalize(self, data: Data) -> Data:
        """Turn the driver's Arrow types into the connector's (identity by default)."""
        return data

    def _table_schema(self, connection: Any, target: TableName) -> pa.Schema:
        """The Arrow schema a ``SELECT *`` of ``target`` produces (for ``scan``)."""
        result = self._open_reader(connection, f"SELECT * FROM {target.sql} LIMIT 0", None)
        try:
            return self._normalize(result.schema.empty_table()).schema
        finally:
            result.close()

    def _begin(self, connection: Any) -> None:
        self._execute_statement(connection, "BEGIN", None)

    def _commit(self, connection: Any) -> None:
        self._execute_statement(connection, "COMMIT", None)

    def _rollback(self, connection: Any) -> None:
        self._execute_statement(connection, "ROLLBACK", None)

    def _health_detail(self) -> str:
        return self.name

    # -- reads ----------------------------------------------------------------------------

    def table_name(self, name: str) -> TableName:
        """Parse and quote a table reference (unquoted parts follow the database's case rule)."""
        return parse_table_name(name, self.dialect, max_parts=self.table_name_parts)

    def _bind(self, sql: str, params: QueryParams) -> tuple[str, list[Any] | None]:
        statement, values = bind_params(
            sql, params, self.param_style, backslash_escapes=self.backslash_escapes
        )
        logger.debug("%s %s: %s", self.type_name, self.name, statement)
        return statement, values

    def _statement(
        self, source: str, params: QueryParams, columns: Sequence[str] | None
    ) -> tuple[str, list[Any] | None]:
        if looks_like_sql(source):
            if columns:
                raise ConfigurationError(
                    "columns applies to table sources; select the columns in the SQL", resource=source
                )
            return self._bind(source, params)
        if params:
            raise ConfigurationError(
                "params apply to SQL sources only; this source is a table name", resource=source
            )
        target = self.table_name(source)
        return self._bind(
            select_sql(target.sql, list(columns) if columns else None, Pushdown(), None, self.dialect), None
        )

    def query(self, sql: str, params: QueryParams = None) -> pa.Table:
        """Run SQL with ``?`` (sequence) or ``:name`` / ``$name`` (mapping) parameters; the whole result."""
        statement, values = self._bind(sql, params)

        def run() -> pa.Table:
            with self._connections.connection() as connection:
                return self._normalize(self._read_table(connection, statement, values))

        return self._call("query", run, resource=sql)

    def execute(self, sql: str, params: QueryParams = None) -> int:
        """Run a statement that returns no rows (DDL, DML); the rows it affected.

        Not retried: a statement that changes data might run twice.
        """
        statement, values = self._bind(sql, params)

        def run() -> int:
            with self._connections.connection() as connection:
                return self._execute_statement(connection, statement, values)

        return self._call("execute", run, resource=sql, resilience=self._once)

    def _open(self, sql: str, params: list[Any] | None) -> tuple[Any, Result]:
        connection = self._connections.checkout()
        try:
            return connection, self._open_reader(connection, sql, params)
        except BaseException as exc:
            self._connections.checkin(connection, discard=self._is_connection_failure(exc))
            raise

    def _drain(self, connection: Any, result: Result) -> Iterator[pa.RecordBatch]:
        completed = failed = produced = False
        try:
            for batch in result.batches:
                produced = True
                yield self._normalize(batch)
            if not produced:  # no rows, and a driver that sent no batch: the schema still goes out
                yield self._normalize(pa.RecordBatch.from_pylist([], schema=result.schema))
            completed = True
        except Exception as exc:
            failed = self._is_connection_failure(exc)
            raise
        finally:
            with contextlib.suppress(Exception):
                result.close()
            # A stream abandoned half-way leaves the connection mid-result: close it.
            self._connections.checkin(connection, discard=failed or not completed)

    def stream(
        self,
        source: str,
        *,
        params: QueryParams = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: Sequence[str] | None = None,
    ) -> Generator[pa.RecordBatch, None, None]:
        """Yield a query's result or a table's rows in batches of exactly ``batch_size`` rows.

        The database's batches are re-chunked (zero-copy slices) so that every batch but
        the last has ``batch_size`` rows; a result without rows is one empty batch, which
        carries its schema. One pooled connection is held until the iterator
        is exhausted or closed. An error while rows arrive is translated but not retried (a
        restart would repeat rows the caller already has).
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}", resource=source)
        sql, values = self._statement(source, params, columns)
        connection, result = self._call("stream", self._open, sql, values, resource=source)
        yield from exact_batches(self._translate_stream(self._drain(connection, result), source), batch_size)

    def scan(self, source: str, *, batch_size: int = DEFAULT_BATCH_SIZE, **options: Any) -> pl.LazyFrame:
        """A LazyFrame over a table; selected columns, simple filters and limits run in the database."""
        if options:
            raise ConfigurationError(f"unknown scan options: {', '.join(sorted(options))}", resource=source)
        target = self.table_name(source)

        def describe() -> pa.Schema:
            with self._connections.connection() as connection:
                return self._table_schema(connection, target)

        frame = pl.from_arrow(self._call("scan", describe, resource=source).empty_table())
        assert isinstance(frame, pl.DataFrame)

        def fetch(
            columns: list[str] | None, pushdown: Pushdown, limit: int | None, size: int
        ) -> Iterator[pa.RecordBatch]:
            sql = select_sql(target.sql, columns, pushdown, limit, self.dialect)
            return self.stream(sql, params=[param.value for param in pushdown.params], batch_size=size)

        return scan_sql_table(
            frame.schema, fetch, self.dialect, batch_size=batch_size, name=f"{self.type_name}:{target.listed}"
        )

    # -- writes ---------------------------------------------------------------------------

    def write(self, data: Any, target: str, *, mode: WriteMode = "append") -> WriteResult:
        """Bulk-load Arrow/Polars/pandas data into a table, in one transaction.

        A missing table is created from the data's schema. ``overwrite`` empties the table
        and loads the new rows in the same transaction, so readers see the old rows or the
        new ones, never a mix or none.
        """
        if mode not in ("append", "overwrite"):
            raise ConfigurationError(f"mode must be 'append' or 'overwrite', got {mode!r}", resource=target)
        table = to_arrow_table(data)
        if not table.num_columns:
            raise SchemaError("the data has no columns; give at least one column to write", resource=target)
        name = self.table_name(target)
        rows = self._load_table(table, name, mode, resource=target)
        return WriteResult(target=target, rows=rows, paths=[name.listed])

    def _load_table(self, table: pa.Table, target: TableName, mode: WriteMode, *, resource: str) -> int:
        """Load ``table`` into ``target``, retried as a whole; the rows loaded.

        Each attempt is :meth:`_write_once` (``_bulk_load`` inside ``BEGIN`` / ``COMMIT``). A
        connector whose load runs its own transaction, with setup done once per write that
        every attempt shares (Snowflake stages one Parquet file, then ``COPY``), overrides this.
        """
        return self._call("write", self._write_once, table, target, mode, resource=resource)

    def _write_once(self, table: pa.Table, target: TableName, mode: WriteMode) -> int:
        connection = self._connections.checkout()
        discard = True
        rolled_back = True
        try:
            self._begin(connection)
            try:
                rows = self._bulk_load(connection, table, target, mode)
            except BaseException:
                try:
                    self._rollback(connection)
                except Exception:
                    rolled_back = False  # still inside an open or aborted transaction
                raise
            try:
                self._commit(connection)
            except Exception as exc:
                if self._is_connection_failure(exc):
                    # The COMMIT may have been applied: a retry could load the rows twice.
                    raise JobFailedError(
                        f"the connection was lost while committing the write to {target.listed}; "
                        "it may or may not have been applied: check the table before writing again",
                        resource=target.listed,
                    ) from exc
                raise
            discard = False
            return rows
        except Exception as exc:
            # A connection whose ROLLBACK failed would hand its next user an aborted transaction.
            discard = not rolled_back or any(
                self._is_connection_failure(e) for e in (exc, exc.__cause__) if e is not None
            )
            raise
        finally:
            self._connections.checkin(connection, discard=discard)

    # -- catalog and lifecycle ------------------------------------------------------------

    def list(self, prefix: str = "") -> list[str]:
        """Tables as ``schema.table``, and bare ``table`` for those in the current schema."""
        result = self.query(self.list_tables_sql)
        names: set[str] = set()
        for schema, table, current in zip(*(column.to_pylist() for column in result.columns)):
            names.add(f"{schema}.{table}")
            if current:
                names.add(str(table))
        return sorted(name for name in names if name.startswith(prefix))

    def _check_health(self) -> str:
        with self._connections.connection() as connection:
            self._execute_statement(connection, "SELECT 1", None)
        return self._health_detail()
