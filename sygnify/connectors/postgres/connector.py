"""PostgreSQL through the ADBC driver: ``COPY``-binary reads straight into Arrow, ``COPY`` bulk loads.

Everything but the declarations below comes from the shared SQL layer
(:class:`~sygnify.connectors._sql.connector.SqlConnector`): the pool, parameter binding
(``?`` or ``:name`` / ``$name``, rewritten to ``$1``; values are bound by the server),
exact-size streaming, scan pushdown and transactional writes. Example (needs a server)::

    from sygnify import CloudDataConnector

    with CloudDataConnector() as connector:
        pg = connector.connect("postgres", host="db.internal", dbname="sales", user="etl",
                               password="...", statement_timeout=300)
        recent = pg.query("SELECT * FROM orders WHERE placed > :since", {"since": cutoff})
        for batch in pg.stream("orders", batch_size=100_000):
            ...
        pg.write(frame, "analytics.orders_copy", mode="overwrite")
        big = pg.scan("orders").filter(pl.col("amount") > 100).select("id").collect()
"""

from __future__ import annotations

from typing import Any, TypeVar

import adbc_driver_postgresql.dbapi as adbc  # type: ignore[import-untyped]
import pyarrow as pa

from sygnify.connectors._sql.connector import Result, SqlConnector
from sygnify.connectors._sql.names import TableName, quote_identifier
from sygnify.connectors._sql.scan import SqlDialect
from sygnify.connectors.base import WriteMode
from sygnify.connectors.postgres.config import (
    PostgresConfig,
    connection_secrets,
    connection_uri,
    describe_target,
)
from sygnify.connectors.postgres.errors import is_connection_failure, translate_postgres_error
from sygnify.connectors.postgres.types import normalize
from sygnify.errors import SygnifyError

__all__ = ["DIALECT", "PostgresConnector"]

Data = TypeVar("Data", pa.Table, pa.RecordBatch)

#: Double-quoted identifiers, ``$1`` placeholders, unquoted names folded to lower case.
DIALECT = SqlDialect(quote=quote_identifier, placeholder=lambda _name, index: f"${index + 1}", fold=str.lower)


class _RedactedDriverError(Exception):
    """A driver error whose text had the password cut out (translated like the original)."""


class PostgresConnector(SqlConnector[PostgresConfig]):
    """PostgreSQL tables and SQL as Arrow; ``COPY`` bulk loads; a pool of ADBC connections."""

    type_name = "postgres"
    config_model = PostgresConfig
    dialect = DIALECT
    param_style = "dollar"
    table_name_parts = 2  # schema.table: a session sees one database
    list_tables_sql = (
        "SELECT table_schema, table_name, table_schema = current_schema() "
        "FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
        "AND table_schema NOT LIKE 'pg\\_toast%' AND table_schema NOT LIKE 'pg\\_temp\\_%'"
    )

    def _connect(self) -> Any:
        try:
            return adbc.connect(connection_uri(self.config), autocommit=True)
        except Exception as exc:
            text = str(exc)
            secrets = [s for s in connection_secrets(self.config) if s in text]
            if not secrets:
                raise
            for secret in secrets:
                text = text.replace(secret, "***")
            # The driver echoed the URI or password: translate here, and drop the chain that holds it.
            raise self._translate(_RedactedDriverError(text), operation="connect", resource=None) from None

    def _open_reader(self, connection: Any, sql: str, params: list[Any] | None) -> Result:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, parameters=params)
            reader = cursor.fetch_record_batch()
        except BaseException:
            cursor.close()
            raise

        def close() -> None:
            try:
                reader.close()
            finally:
                cursor.close()

        return Result(reader.schema, iter(reader), close)

    def _read_table(self, connection: Any, sql: str, params: list[Any] | None) -> pa.Table:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, parameters=params)
            table: pa.Table = cursor.fetch_arrow_table()
            return table
        finally:
            cursor.close()

    def _execute_statement(self, connection: Any, sql: str, params: list[Any] | None) -> int:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, parameters=params)
            return max(int(cursor.rowcount or 0), 0)
        finally:
            cursor.close()

    def _bulk_load(self, connection: Any, table: pa.Table, target: TableName, mode: WriteMode) -> int:
        cursor = connection.cursor()
        try:
            if mode == "overwrite":
                cursor.execute("SELECT to_regclass($1) IS NOT NULL", parameters=[target.sql])
                (exists,) = cursor.fetchone()
                if exists:
                    # In the write's transaction: readers see the old rows until COMMIT.
                    cursor.execute(f"TRUNCATE {target.sql}")
            rows = cursor.adbc_ingest(target.table, table, mode="create_append", db_schema_name=target.schema)
            return int(rows) if rows is not None and rows >= 0 else table.num_rows
        finally:
            cursor.close()

    def _normalize(self, data: Data) -> Data:
        return normalize(data)

    def _is_connection_failure(self, exc: BaseException) -> bool:
        return is_connection_failure(exc)

    def _health_detail(self) -> str:
        return describe_target(self.config)

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        return translate_postgres_error(
            exc, f"postgres {operation} failed ({describe_target(self.config)})", resource
        )
