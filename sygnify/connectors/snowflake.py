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
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ConfigDict, Field, SecretStr, model_validator

from sygnify._arrow import DEFAULT_BATCH_SIZE, rebatch, to_arrow_table
from sygnify.config import ConnectorConfig, config_fingerprint
from sygnify.connectors._sql_scan import Pushdown, SqlDialect, scan_sql_table, select_sql
from sygnify.connectors.base import BaseConnector, QueryParams, WriteMode, WriteResult
from sygnify.connectors.pool import ClientPool
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    QueryError,
    SchemaError,
    SygnifyError,
    ThrottledError,
)

__all__ = ["SnowflakeConfig", "SnowflakeConnectionPool", "SnowflakeConnector", "named_to_qmark"]

_SQL_START = re.compile(r"^\s*(\(|select\b|with\b|show\b|describe\b|desc\b)", re.I)
_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_TABLE_NAME = re.compile(rf"^{_PART}(?:\.{_PART}){{0,2}}$")
#: Strings, quoted identifiers, comments and $$-blocks, skipped when looking for :name.
_SKIP = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\$\$.*?\$\$", re.S)
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


def quote_identifier(name: str) -> str:
    """A double-quoted, case-preserving Snowflake identifier.

    >>> quote_identifier('a"b')
    '"a""b"'
    """
    return '"' + name.replace('"', '""') + '"'


DIALECT = SqlDialect(quote=quote_identifier, placeholder=lambda _name, _index: "?")


def named_to_qmark(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """Rewrite ``:name`` placeholders to ``?`` (server-side binding) and order the values.

    Strings, quoted identifiers, comments and ``::`` casts are left alone:

    >>> named_to_qmark("SELECT ':x', a::int FROM t WHERE a = :x OR b = :y OR c = :x", {"x": 1, "y": 2})
    ("SELECT ':x', a::int FROM t WHERE a = ? OR b = ? OR c = ?", [1, 2, 1])
    """
    values: list[Any] = []
    used: set[str] = set()

    def rewrite(segment: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in params:
                raise QueryError(f"the SQL uses :{name}, but params has no {name!r}", resource=name)
            used.add(name)
            values.append(params[name])
            return "?"

        return _NAMED.sub(replace, segment)

    out: list[str] = []
    position = 0
    for skipped in _SKIP.finditer(sql):
        out.append(rewrite(sql[position : skipped.start()]))
        out.append(skipped.group(0))
        position = skipped.end()
    out.append(rewrite(sql[position:]))
    unused = sorted(set(params) - used)
    if unused:
        raise QueryError(f"params {', '.join(unused)} are not used in the SQL", resource=unused[0])
    return "".join(out), values


class SnowflakeConfig(ConnectorConfig):
    """Options of the ``snowflake`` connector.

    Authentication: ``password``; key pair (``private_key_file`` + optional
    ``private_key_file_pwd``); OAuth (``token``); or ``authenticator="externalbrowser"``
    for interactive SSO (opens a browser; not for servers).
    """

    model_config = ConfigDict(populate_by_name=True)

    account: str = Field(description="Account identifier, e.g. 'xy12345.eu-west-1' or 'org-account'.")
    user: str | None = None
    password: SecretStr | None = None
    private_key_file: Path | None = Field(None, description="PEM (PKCS#8) private key for key-pair auth.")
    private_key_file_pwd: SecretStr | None = Field(None, description="Passphrase of the private key.")
    token: SecretStr | None = Field(None, description="OAuth access token.")
    authenticator: Literal["snowflake", "snowflake_jwt", "oauth", "externalbrowser"] | None = None
    warehouse: str | None = None
    role: str | None = None
    database: str | None = None
    schema_: str | None = Field(None, alias="schema")
    host: str | None = Field(None, description="Override the host (private link, emulators).")
    port: int | None = Field(None, ge=1, le=65535)
    protocol: Literal["https", "http"] = "https"
    pool_size: int = Field(4, ge=1, le=64, description="Connections kept per configuration.")
    checkout_timeout: float = Field(60.0, gt=0, description="Seconds to wait for a free pooled connection.")
    keep_alive: bool = Field(True, description="Keep sessions alive while idle in the pool.")
    login_timeout: int = Field(60, ge=1)
    network_timeout: int | None = Field(None, ge=1)
    query_timeout: int | None = Field(None, ge=1, description="Seconds a statement may run (server-side).")
    session_parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    parquet_row_group_rows: int = Field(500_000, ge=1, description="Row group size of write() uploads.")

    @model_validator(mode="after")
    def _auth_is_complete(self) -> SnowflakeConfig:
        method = self.auth_method()
        if method in ("snowflake", "snowflake_jwt", "externalbrowser") and not self.user:
            raise ValueError(f"{method} authentication needs user")
        if method == "snowflake" and self.password is None:
            raise ValueError("give password, private_key_file, token, or authenticator='externalbrowser'")
        if method == "oauth" and self.token is None:
            raise ValueError("authenticator 'oauth' needs token")
        if method == "snowflake_jwt" and self.private_key_file is None:
            raise ValueError("authenticator 'snowflake_jwt' needs private_key_file")
        return self

    def auth_method(self) -> str:
        if self.authenticator is not None:
            return self.authenticator
        if self.private_key_file is not None:
            return "snowflake_jwt"
        if self.token is not None:
            return "oauth"
        return "snowflake"


def _load_private_key(config: SnowflakeConfig) -> bytes:
    from cryptography.hazmat.primitives import serialization

    assert config.private_key_file is not None
    try:
        pem = config.private_key_file.expanduser().read_bytes()
    except OSError:
        raise ConfigurationError(
            f"private_key_file {config.private_key_file} cannot be read", resource="private_key_file"
        ) from None
    passphrase = (
        config.private_key_file_pwd.get_secret_value().encode() if config.private_key_file_pwd else None
    )
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        hint = "wrong or missing passphrase, or not a PEM private key"
        raise AuthenticationError(
            f"private key {config.private_key_file} could not be loaded ({hint}: {type(exc).__name__})",
            resource="private_key_file",
        ) from None
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def connect_arguments(config: SnowflakeConfig) -> dict[str, Any]:
    """Keyword arguments for ``snowflake.connector.connect`` (secrets included: never log them)."""
    args: dict[str, Any] = {
        "account": config.account,
        "paramstyle": "qmark",  # server-side binding: values never enter the SQL text
        "client_session_keep_alive": config.keep_alive,
        "login_timeout": config.login_timeout,
        "protocol": config.protocol,
        "session_parameters": dict(config.session_parameters),
    }
    for key in ("user", "warehouse", "role", "database", "host", "port", "network_timeout"):
        value = getattr(config, key)
        if value is not None:
            args[key] = value
    if config.schema_ is not None:
        args["schema"] = config.schema_
    method = config.auth_method()
    if method == "snowflake" and config.password is not None:
        args["password"] = config.password.get_secret_value()
    elif method == "snowflake_jwt":
        args["authenticator"] = "SNOWFLAKE_JWT"
        args["private_key"] = _load_private_key(config)
    elif method == "oauth" and config.token is not None:
        args["authenticator"] = "oauth"
        args["token"] = config.token.get_secret_value()
    elif method == "externalbrowser":
        args["authenticator"] = "externalbrowser"
    return args


class SnowflakeConnectionPool:
    """A small pool of Snowflake connections: at most ``size``, checked out one user at a time.

    >>> made = []
    >>> pool = SnowflakeConnectionPool(lambda: made.append(object()) or made[-1], size=1)
    >>> with pool.connection() as first:
    ...     pass
    >>> with pool.connection() as second:
    ...     second is first, len(made)
    (True, 1)
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        size: int = 4,
        checkout_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self.size = size
        self.checkout_timeout = checkout_timeout
        self._clock = clock
        self._condition = threading.Condition()
        self._idle: list[Any] = []
        self._open = 0
        self._closed = False

    def checkout(self) -> Any:
        """A connection for the caller's exclusive use; give it back with :meth:`checkin`."""
        deadline = self._clock() + self.checkout_timeout
        with self._condition:
            while True:
                if self._closed:
                    raise ConfigurationError("the Snowflake connection pool is closed")
                while self._idle:
                    connection = self._idle.pop()
                    if not _is_closed(connection):
                        return connection
                    self._open -= 1
                if self._open < self.size:
                    self._open += 1
                    break
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise OperationTimeoutError(
                        f"no Snowflake connection became free within {self.checkout_timeout:g} s "
                        f"(pool_size={self.size}); raise pool_size or close streams you no longer read",
                        resource="pool",
                    )
                self._condition.wait(remaining)
        try:
            return self._factory()
        except BaseException:
            with self._condition:
                self._open -= 1
                self._condition.notify()
            raise

    def checkin(self, connection: Any, *, discard: bool = False) -> None:
        """Return a connection; ``discard`` closes it (after a connection-level failure)."""
        with self._condition:
            if discard or self._closed or _is_closed(connection):
                self._open -= 1
                keep = False
            else:
                self._idle.append(connection)
                keep = True
            self._condition.notify()
        if not keep:
            _close_quietly(connection)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        connection = self.checkout()
        discard = False
        try:
            yield connection
        except Exception as exc:
            discard = _is_connection_failure(exc)
            raise
        finally:
            self.checkin(connection, discard=discard)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._condition.notify_all()
        for connection in idle:
            _close_quietly(connection)


def _is_closed(connection: Any) -> bool:
    is_closed = getattr(connection, "is_closed", None)
    return bool(is_closed()) if callable(is_closed) else False


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):
        close = getattr(connection, "close", None)
        if callable(close):
            close()


def _is_connection_failure(exc: BaseException) -> bool:
    try:
        errors = importlib.import_module("snowflake.connector.errors")
    except ImportError:  # pragma: no cover - the connector is installed with this module
        return False
    return isinstance(exc, errors.OperationalError | errors.InterfaceError)


_SNOWFLAKE_TYPES: list[tuple[Callable[[pa.DataType], bool], str]] = [
    (pa.types.is_boolean, "BOOLEAN"),
    (pa.types.is_integer, "INTEGER"),
    (pa.types.is_floating, "FLOAT"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t), "TEXT"),
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "BINARY"),
    (pa.types.is_date, "DATE"),
    (pa.types.is_time, "TIME"),
    (lambda t: pa.types.is_list(t) or pa.types.is_large_list(t), "ARRAY"),
    (pa.types.is_struct, "OBJECT"),
]


def snowflake_type(name: str, arrow_type: pa.DataType) -> str:
    """The Snowflake column type ``write()`` uses for an Arrow type.

    >>> snowflake_type("x", pa.decimal128(12, 2)), snowflake_type("t", pa.timestamp("us", tz="UTC"))
    ('NUMBER(12,2)', 'TIMESTAMP_TZ')
    """
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_decimal(arrow_type) and arrow_type.precision <= 38:
        return f"NUMBER({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP_TZ" if arrow_type.tz else "TIMESTAMP_NTZ"
    for check, sf_type in _SNOWFLAKE_TYPES:
        if check(arrow_type):
            return sf_type
    raise SchemaError(
        f"column {name!r} has Arrow type {arrow_type}, which has no Snowflake type", resource=name
    )


def _arrow_type(code: int, precision: int | None, scale: int | None) -> pa.DataType:
    """The Arrow type the Snowflake connector produces for a result column's type code."""
    if code == 0:  # FIXED
        return pa.int64() if not scale else pa.decimal128(precision or 38, scale)
    mapping: dict[int, pa.DataType] = {
        1: pa.float64(),
        2: pa.string(),
        3: pa.date32(),
        4: pa.timestamp("ns"),
        5: pa.string(),
        6: pa.timestamp("ns", tz="UTC"),
        7: pa.timestamp("ns", tz="UTC"),
        8: pa.timestamp("ns"),
        9: pa.string(),
        10: pa.string(),
        11: pa.binary(),
        12: pa.time64("ns"),
        13: pa.bool_(),
    }
    return mapping.get(code, pa.string())


def _listed_name(table_sql: str) -> str:
    """How ``list()`` names a table: ``SCHEMA.TABLE`` or ``TABLE``, unquoted parts upper-cased."""
    parts = re.findall(_PART, table_sql)
    names = [part[1:-1].replace('""', '"') if part.startswith('"') else part.upper() for part in parts]
    return ".".join(names[-2:])


def _widen_integers(batch: pa.RecordBatch) -> pa.RecordBatch:
    # Snowflake sends each NUMBER(p,0) chunk in the narrowest int that fits; users get int64.
    if not any(pa.types.is_integer(t) and t != pa.int64() for t in batch.schema.types):
        return batch
    columns = [
        column.cast(pa.int64()) if pa.types.is_integer(column.type) else column for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


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

    @staticmethod
    def _bind(sql: str, params: QueryParams) -> tuple[str, list[Any] | None]:
        if params is None:
            return sql, None
        if isinstance(params, Mapping):
            return named_to_qmark(sql, params)
        if isinstance(params, str | bytes):
            raise ConfigurationError("params must be a sequence (for ?) or a mapping (for :name), not a str")
        return sql, list(params)

    def _execute(self, sql: str, params: QueryParams) -> tuple[Any, Any]:
        """One attempt: check out a connection and execute; returns (connection, cursor)."""
        statement, bound = self._bind(sql, params)
        connection = self._connections.checkout()
        try:
            cursor = connection.cursor()
            cursor.execute(statement, bound, timeout=self.config.query_timeout)
        except Exception as exc:
            self._connections.checkin(connection, discard=_is_connection_failure(exc))
            raise
        return connection, cursor

    def _batches(self, connection: Any, cursor: Any, source: str) -> Iterator[pa.RecordBatch]:
        failed = False
        try:
            for table in cursor.fetch_arrow_batches():
                for batch in table.to_batches():
                    yield _widen_integers(batch)
        except Exception as exc:
            failed = _is_connection_failure(exc)
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
                batches = [_widen_integers(batch) for batch in table.to_batches()]
                return pa.Table.from_batches(batches, schema=batches[0].schema if batches else table.schema)
            except Exception as exc:
                failed = _is_connection_failure(exc)
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
                [(m.name, _arrow_type(m.type_code, m.precision, m.scale)) for m in metadata or []]
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
        schema with case-preserving (quoted) column names. ``overwrite`` deletes the old
        rows and loads the new ones in one transaction.
        """
        if mode not in ("append", "overwrite"):
            raise ConfigurationError(f"mode must be 'append' or 'overwrite', got {mode!r}", resource=target)
        table = to_arrow_table(data)
        table_sql = self.table_sql(target)
        columns = [(field.name, snowflake_type(field.name, field.type)) for field in table.schema]
        if not columns:
            raise SchemaError("the data has no columns", resource=target)
        staging = Path(tempfile.mkdtemp(prefix="sygnify-snowflake-"))
        try:
            path = staging / f"part-{uuid.uuid4().hex}.parquet"
            pq.write_table(table, path, row_group_size=self.config.parquet_row_group_rows)
            rows = self._call(
                "write", self._load, path, table_sql, columns, mode, table.num_rows, resource=target
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return WriteResult(target=target, rows=rows, paths=[_listed_name(table_sql)])

    def _load(
        self, path: Path, table_sql: str, columns: list[tuple[str, str]], mode: WriteMode, expected: int
    ) -> int:
        stage = quote_identifier(f"SYGNIFY_STAGE_{uuid.uuid4().hex.upper()}")
        definition = ", ".join(f"{quote_identifier(name)} {sf_type}" for name, sf_type in columns)
        column_list = ", ".join(quote_identifier(name) for name, _ in columns)
        # Parquet fields are addressed by name; VARIANT-typed fields need no cast.
        selection = ", ".join(f"$1:{quote_identifier(name)}" for name, _ in columns)
        location = Path(path).as_posix().replace("'", "\\'")
        with self._connections.connection() as connection:
            cursor = connection.cursor()
            try:
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {table_sql} ({definition})")
                cursor.execute(f"CREATE TEMPORARY STAGE {stage}")
                cursor.execute(f"PUT 'file://{location}' @{stage} AUTO_COMPRESS=FALSE OVERWRITE=TRUE")
                cursor.execute("BEGIN")
                try:
                    if mode == "overwrite":
                        cursor.execute(f"DELETE FROM {table_sql}")
                    cursor.execute(
                        f"COPY INTO {table_sql} ({column_list}) FROM (SELECT {selection} FROM @{stage}) "
                        "FILE_FORMAT=(TYPE=PARQUET COMPRESSION=AUTO USE_LOGICAL_TYPE=TRUE) "
                        "PURGE=TRUE ON_ERROR=ABORT_STATEMENT"
                    )
                    loaded = sum(int(row[3] or 0) for row in cursor.fetchall() if len(row) > 3)
                    cursor.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(Exception):
                        cursor.execute("ROLLBACK")
                    raise
                with contextlib.suppress(Exception):
                    cursor.execute(f"DROP STAGE IF EXISTS {stage}")
            finally:
                cursor.close()
        return loaded or expected

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


# Snowflake error numbers (documented in the connector's errorcode module and server docs).
_AUTH_ERRNOS = {390100, 390101, 390102, 390104, 390144, 390318, 390303, 251005, 251006, 250006}
_NOT_FOUND_ERRNOS = {2003, 2043, 2140, 2151}
_TIMEOUT_ERRNOS = {604, 630, 250007, 251011, 253001}


def translate_snowflake_error(exc: Exception, context: str, resource: str | None) -> SygnifyError:
    """Map a snowflake-connector exception onto the sygnify error tree (the SQL is not echoed)."""
    errors: Any = importlib.import_module("snowflake.connector.errors")
    message = f"{context}: {getattr(exc, 'msg', None) or exc}"
    errno = getattr(exc, "errno", None)
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    if errno in _AUTH_ERRNOS or sqlstate == "28000":
        return AuthenticationError(message, resource=resource)
    timed_out = isinstance(exc, errors.OperationalError) and "timeout" in str(exc).lower()
    if errno in _TIMEOUT_ERRNOS or timed_out:
        return OperationTimeoutError(message, resource=resource)
    if isinstance(exc, errors.ForbiddenError) or errno == 3001:
        return PermissionDeniedError(message, resource=resource)
    if isinstance(exc, errors.TooManyRequests):
        return ThrottledError(message, resource=resource)
    if isinstance(
        exc, errors.ServiceUnavailableError | errors.GatewayTimeoutError | errors.InternalServerError
    ):
        return ConnectionFailedError(message, resource=resource)
    if errno in _NOT_FOUND_ERRNOS or sqlstate == "42S02":
        return NotFoundError(message, resource=resource)
    if isinstance(exc, errors.ProgrammingError):
        return QueryError(message, resource=resource)
    if isinstance(exc, errors.OperationalError | errors.InterfaceError | ConnectionError | OSError):
        return ConnectionFailedError(message, resource=resource)
    if isinstance(exc, errors.DatabaseError):
        return QueryError(message, resource=resource)
    if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError):
        return SchemaError(message, resource=resource)
    return SygnifyError(f"{message} ({type(exc).__name__})", resource=resource)
