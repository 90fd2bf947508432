"""The postgres connector against this machine's PostgreSQL server (127.0.0.1:5432, trust auth).

Each test session creates a database ``sygnify_test_<random>`` and drops it afterwards;
roles a test creates are dropped with it. With ``CI=true`` an unreachable server fails
the tests instead of skipping them.

The local server trusts every 127.0.0.1 login, so a wrong password cannot be provoked
here; authentication failures are tested with what pg_hba still refuses (a role that does
not exist, a role that may not log in).
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as adbc  # type: ignore[import-untyped]
import polars as pl
import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors._sql.connector import logger as sql_logger
from sygnify.connectors._sql.params import bind_params
from sygnify.connectors.postgres import PostgresConfig, PostgresConnector, connection_uri
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    DataQualityError,
    JobFailedError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    QueryError,
    StatementTimeoutError,
    SygnifyError,
)
from sygnify.testing.connectors import ConnectorConformance, sample_table
from tests.connectors.postgres._tcp_proxy import TcpProxy, tcp_proxy
from tests.services import require

pytestmark = pytest.mark.emulator

HOST, PORT, ADMIN = "127.0.0.1", 5432, "postgres"
FAST_RETRY = {"max_attempts": 2, "initial_delay": 0.001, "max_delay": 0.001, "jitter": 0.0}
DOCS = Path(__file__).resolve().parents[3] / "docs" / "connectors" / "postgres.md"


def _admin(dbname: str = "postgres") -> Any:
    return adbc.connect(f"postgresql://{ADMIN}@{HOST}:{PORT}/{dbname}?connect_timeout=5", autocommit=True)


def _run(sql: str, dbname: str = "postgres") -> None:
    with _admin(dbname) as connection, connection.cursor() as cursor:
        cursor.execute(sql)


@pytest.fixture(scope="session")
def database() -> Iterator[str | None]:
    """A fresh database for this session (``None`` when the server is unreachable)."""
    try:
        _run("SELECT 1")
    except Exception:
        yield None
        return
    name = f"sygnify_test_{uuid.uuid4().hex[:10]}"
    _run(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        _run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def dbname(database: str | None) -> str:
    require(database is not None, f"PostgreSQL is not reachable at {HOST}:{PORT}")
    assert database is not None
    return database


def options(dbname: str, **extra: Any) -> dict[str, Any]:
    return {
        "host": HOST,
        "port": PORT,
        "user": ADMIN,
        "dbname": dbname,
        "retry": FAST_RETRY,
        "pool_size": 2,
        **extra,
    }


@pytest.fixture
def pg(connector: CloudDataConnector, dbname: str) -> PostgresConnector:
    return connect(connector, "pg", **options(dbname))


@pytest.fixture
def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def role(dbname: str) -> Iterator[str]:
    name = f"sygnify_role_{uuid.uuid4().hex[:8]}"
    yield name
    if _role_exists(name):
        _run(f"DROP OWNED BY {name}", dbname)
        _run(f"DROP ROLE {name}")


def _role_exists(name: str) -> bool:
    with _admin() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = $1", parameters=[name])
        return bool(cursor.fetchone()[0])


def connect(connector: CloudDataConnector, name: str, **config: Any) -> PostgresConnector:
    connection = connector.connect("postgres", name=name, **config)
    assert isinstance(connection, PostgresConnector)
    return connection


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class TestPostgresConformance(ConnectorConformance):
    missing_source = "no_such_table"

    @pytest.fixture
    def connection(self, pg: PostgresConnector) -> PostgresConnector:
        return pg

    @pytest.fixture
    def dataset_target(self, table_name: str) -> str:
        return table_name


# -- parameters ---------------------------------------------------------------------------


def test_positional_and_named_parameters_are_bound_not_interpolated(
    pg: PostgresConnector, table_name: str
) -> None:
    pg.write(pa.table({"id": [1, 2, 3], "name": ["ann", "bob", "x' OR '1'='1"]}), table_name)
    positional = pg.query(
        f"SELECT name FROM {table_name} WHERE id >= ? AND name <> ? ORDER BY id", [2, "bob"]
    )
    assert positional.column("name").to_pylist() == ["x' OR '1'='1"]
    native = pg.query(f"SELECT count(*) AS n FROM {table_name} WHERE id > $1", [1])
    assert native.column("n").to_pylist() == [2]
    named = pg.query(
        f"SELECT id FROM {table_name} WHERE name = :name OR id = $id OR id = :id ORDER BY id",
        {"name": "x' OR '1'='1", "id": 1},
    )
    assert named.column("id").to_pylist() == [1, 3]
    injected = pg.query(f"SELECT count(*) AS n FROM {table_name} WHERE name = ?", ["x' OR '1'='1' --"])
    assert injected.column("n").to_pylist() == [0]


def test_casts_strings_and_jsonb_question_mark_operator_are_left_alone(pg: PostgresConnector) -> None:
    result = pg.query("SELECT ':a'::text AS s, $1::int4 AS v, '{\"k\": 1}'::jsonb ? 'k' AS has", [7])
    assert result.to_pylist() == [{"s": ":a", "v": 7, "has": True}]
    assert bind_params("SELECT $$ :x ? $$, $1", [1], "dollar") == ("SELECT $$ :x ? $$, $1", [1])


def test_parameter_mistakes_are_query_errors(pg: PostgresConnector) -> None:
    with pytest.raises(QueryError, match="no 'missing'"):
        pg.query("SELECT :missing::int AS x", {"other": 1})
    with pytest.raises(QueryError, match="not used"):
        pg.query("SELECT :a::int AS x", {"a": 1, "b": 2})
    with pytest.raises(QueryError, match="2 \\? placeholder"):
        pg.query("SELECT ?::int, ?::int", [1])
    with pytest.raises(ConfigurationError, match="not a str"):
        pg.query("SELECT ?::text", "abc")


# -- types --------------------------------------------------------------------------------

TYPES_DDL = """
CREATE TABLE {t} (
    i2 int2, i4 int4, i8 int8, num numeric(12, 3), num_any numeric, f4 float4, f8 float8,
    txt text, flag bool, day date, at timestamp, at_tz timestamptz, js json, jsb jsonb,
    id uuid, raw bytea, ints int8[], tags text[]
)
"""
TYPES_ROW = """
INSERT INTO {t} VALUES (
    1, 2, 3, 12.345, 1.5, 1.5, 2.25, 'héllo', true, '2024-02-29', '2024-02-29 12:34:56.789',
    '2024-02-29 12:34:56.789+02', '{{"a": [1, 2]}}', '{{"b": true}}',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff', '{{1,2,3}}', '{{x,y}}'
), ({nulls})
"""


def test_types_round_trip(pg: PostgresConnector, table_name: str) -> None:
    pg.execute(TYPES_DDL.format(t=table_name))
    pg.execute(TYPES_ROW.format(t=table_name, nulls=", ".join(["NULL"] * 18)))
    table = pg.query(f"SELECT * FROM {table_name} ORDER BY i2 NULLS LAST")
    types = {field.name: field.type for field in table.schema}
    assert types["i2"] == pa.int16()
    assert types["i4"] == pa.int32()
    assert types["i8"] == pa.int64()
    assert types["num"] == pa.decimal128(12, 3)
    assert types["num_any"] == pa.string()
    assert types["f4"] == pa.float32()
    assert types["f8"] == pa.float64()
    assert types["day"] == pa.date32()
    assert types["at"] == pa.timestamp("us")
    assert types["at_tz"] == pa.timestamp("us", tz="UTC")
    assert types["ints"] == pa.list_(pa.int64())
    assert types["raw"] == pa.binary()
    first, empty = table.to_pylist()
    assert first["num"] == decimal.Decimal("12.345")
    assert first["num_any"] == "1.5"
    assert (first["txt"], first["flag"], first["raw"]) == ("héllo", True, b"\x00\xff")
    assert first["day"] == dt.date(2024, 2, 29)
    assert first["at"] == dt.datetime(2024, 2, 29, 12, 34, 56, 789000)
    assert first["at_tz"] == dt.datetime(2024, 2, 29, 10, 34, 56, 789000, tzinfo=dt.timezone.utc)
    assert first["js"] == '{"a": [1, 2]}'
    assert first["jsb"] == '{"b": true}'
    assert first["id"] == uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert (first["ints"], first["tags"]) == ([1, 2, 3], ["x", "y"])
    assert all(value is None for value in empty.values())
    # ...and back: what write() creates from these Arrow types reads back the same.
    plain = table.drop_columns(["js", "jsb", "id", "num_any"])
    pg.write(plain, f"{table_name}_copy")
    again = pg.query(f"SELECT * FROM {table_name}_copy ORDER BY i2 NULLS LAST")
    assert again.cast(plain.schema).equals(plain)


def test_polars_and_pandas_frames_are_written(pg: PostgresConnector, table_name: str) -> None:
    frame = pl.DataFrame({"id": [1, 2], "name": ["a", None], "at": [dt.datetime(2024, 1, 1), None]})
    assert pg.write(frame, table_name).rows == 2
    assert pg.write(frame.to_pandas(), table_name).rows == 2
    assert pl.from_arrow(pg.query(f"SELECT * FROM {table_name} ORDER BY id")).shape == (4, 3)


# -- stream and scan ----------------------------------------------------------------------


def test_stream_batches_are_exactly_batch_size(pg: PostgresConnector) -> None:
    sizes = [b.num_rows for b in pg.stream("SELECT i FROM generate_series(1, 10007) AS i", batch_size=1000)]
    assert sizes == [1000] * 10 + [7]
    batches = list(pg.stream("SELECT i FROM generate_series(1, :n) AS i", params={"n": 5}, batch_size=2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert pa.Table.from_batches(batches).column("i").to_pylist() == [1, 2, 3, 4, 5]


def test_an_abandoned_stream_gives_its_connection_back_closed(pg: PostgresConnector) -> None:
    stream = pg.stream("SELECT i FROM generate_series(1, 2000000) AS i", batch_size=10)
    next(stream)
    assert pg.pool.open_connections == 1
    stream.close()
    assert pg.pool.open_connections == 0
    assert pg.query("SELECT 1 AS one").column("one").to_pylist() == [1]


def test_scan_pushes_columns_filter_and_limit_into_the_sql(
    pg: PostgresConnector, table_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    pg.write(sample_table(1_000), table_name)
    with caplog.at_level(logging.DEBUG, logger=sql_logger.name):
        frame = pg.scan(table_name, batch_size=64)
        picked = frame.filter((pl.col("id") >= 990) & pl.col("account").is_in(["acct-4", "acct-5"])).select(
            "id"
        )
        head = frame.select("amount").head(3)
        assert picked.collect()["id"].to_list() == [i for i in range(990, 1000) if i % 17 in (4, 5)]
        assert head.collect()["amount"].to_list() == [0.0, 0.37, 0.74]
    sent = [record.getMessage().split(": ", 1)[1] for record in caplog.records]
    where = [sql for sql in sent if "WHERE" in sql]
    assert len(where) == 1
    assert where[0].startswith(f'SELECT "id", "account" FROM "{table_name}" WHERE ')
    assert '("id" >= $' in where[0]
    assert '("account" IN ($' in where[0]
    assert f'SELECT "amount" FROM "{table_name}" LIMIT 3' in sent
    # What the filter leaves to Polars: no LIMIT in the SQL, the right rows anyway.
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=sql_logger.name):
        rows = pg.scan(table_name).filter(pl.col("account").str.ends_with("-16")).head(2).collect()
    assert rows["id"].to_list() == [16, 33]
    assert not any("LIMIT" in record.getMessage() for record in caplog.records)


def test_scan_of_a_missing_table_is_not_found(pg: PostgresConnector) -> None:
    with pytest.raises(NotFoundError, match="no_such_table"):
        pg.scan("no_such_table")


# -- writes -------------------------------------------------------------------------------


def test_overwrite_is_atomic_when_the_load_fails(pg: PostgresConnector, table_name: str) -> None:
    pg.execute(f"CREATE TABLE {table_name} (id int8 NOT NULL, account text, amount float8)")
    pg.write(sample_table(10), table_name)
    bad = pa.table({"id": pa.array([1, None], pa.int64()), "account": ["a", "b"], "amount": [1.0, 2.0]})
    with pytest.raises(DataQualityError, match="null value"):
        pg.write(bad, table_name, mode="overwrite")
    assert pg.query(f"SELECT count(*) AS n FROM {table_name}").column("n").to_pylist() == [10]
    # Overwrite keeps the table itself (its constraints, its grants): TRUNCATE, not DROP.
    pg.write(sample_table(3), table_name, mode="overwrite")
    with pytest.raises(DataQualityError):
        pg.write(bad, table_name)
    assert pg.query(f"SELECT count(*) AS n FROM {table_name}").column("n").to_pylist() == [3]


def test_schema_qualified_and_quoted_names(pg: PostgresConnector, table_name: str) -> None:
    pg.execute(f"CREATE SCHEMA s_{table_name}")
    result = pg.write(sample_table(4), f'S_{table_name}."Mixed Case"')
    assert result.paths == [f"s_{table_name}.Mixed Case"]
    assert result.paths[0] in pg.list(f"s_{table_name}")
    assert sum(b.num_rows for b in pg.stream(f's_{table_name}."Mixed Case"')) == 4
    with pytest.raises(ConfigurationError, match="not a table name"):
        pg.write(sample_table(1), "t; DROP TABLE x")


def test_a_connection_lost_during_commit_is_reported_not_retried(
    pg: PostgresConnector, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []

    def lost(self: PostgresConnector, connection: Any) -> None:
        commits.append(1)
        raise OSError("[libpq] server closed the connection unexpectedly")

    monkeypatch.setattr(PostgresConnector, "_commit", lost)
    with pytest.raises(JobFailedError, match="may or may not have been applied"):
        pg.write(sample_table(2), table_name)
    assert commits == [1]
    assert pg.pool.open_connections == 0


# -- errors -------------------------------------------------------------------------------


def test_unknown_table_and_syntax_errors(pg: PostgresConnector) -> None:
    with pytest.raises(NotFoundError, match='relation "no_such_table" does not exist') as missing:
        pg.query("SELECT * FROM no_such_table")
    assert "Query was" not in missing.value.message
    with pytest.raises(QueryError, match="42601"):
        pg.query("SELEC 1")
    with pytest.raises(DataQualityError, match="division by zero"):
        pg.query("SELECT 1 / 0 AS x")


def test_statement_timeout_is_an_operation_timeout_never_retried(
    connector: CloudDataConnector, dbname: str
) -> None:
    pg = connect(connector, "slow", **options(dbname, statement_timeout=0.2, retry={"max_attempts": 4}))
    started = time.perf_counter()
    with pytest.raises(StatementTimeoutError, match="57014") as info:
        pg.query("SELECT pg_sleep(5)")
    assert isinstance(info.value, OperationTimeoutError)
    assert time.perf_counter() - started < 2  # one statement of 0.2 s, not four with backoff between


def test_missing_database_is_not_found(connector: CloudDataConnector, dbname: str) -> None:
    pg = connect(connector, "nodb", **options(f"{dbname}_missing"))
    with pytest.raises(NotFoundError, match="does not exist"):
        pg.query("SELECT 1")


def test_roles_that_cannot_log_in_are_authentication_errors(
    connector: CloudDataConnector, dbname: str, role: str
) -> None:
    with pytest.raises(AuthenticationError, match="does not exist"):
        connect(connector, "ghost", **options(dbname, user=role, password="s3cret!")).query("SELECT 1")
    _run(f"CREATE ROLE {role} NOLOGIN PASSWORD 'pw'")
    with pytest.raises(AuthenticationError, match="not permitted to log in") as info:
        connect(connector, "nologin", **options(dbname, user=role, password="pw")).query("SELECT 1")
    assert "pw@" not in info.value.message


def test_missing_privilege_is_permission_denied(
    connector: CloudDataConnector, pg: PostgresConnector, dbname: str, role: str, table_name: str
) -> None:
    pg.write(sample_table(2), table_name)
    _run(f"CREATE ROLE {role} LOGIN")
    reader = connect(connector, "reader", **options(dbname, user=role))
    with pytest.raises(PermissionDeniedError, match="42501"):
        reader.query(f"SELECT * FROM {table_name}")
    reader.close()


def test_refused_connection_fails_fast(connector: CloudDataConnector, dbname: str) -> None:
    pg = connect(connector, "closed", **options(dbname, port=free_port()))
    started = time.perf_counter()
    with pytest.raises(ConnectionFailedError, match="refused"):
        pg.query("SELECT 1")
    assert time.perf_counter() - started < 3
    status = pg.health()
    assert not status.ok
    assert "ConnectionFailedError" in status.detail


def test_pool_exhaustion_names_the_connector(connector: CloudDataConnector, dbname: str) -> None:
    pg = connect(connector, "one", **options(dbname, pool_size=1, checkout_timeout=0.2))
    held = pg.stream("SELECT i FROM generate_series(1, 100000) AS i", batch_size=10)
    next(held)
    with pytest.raises(OperationTimeoutError, match="no postgres connection became free"):
        pg.query("SELECT 1")
    held.close()
    assert pg.query("SELECT 1 AS one").num_rows == 1


# -- fault injection ----------------------------------------------------------------------


@pytest.fixture
def proxy(dbname: str) -> Iterator[TcpProxy]:
    with tcp_proxy(HOST, PORT) as running:
        yield running


def test_a_connection_dropped_mid_stream_is_a_typed_error_and_the_pool_recovers(
    connector: CloudDataConnector, dbname: str, proxy: TcpProxy
) -> None:
    pg = connect(connector, "flaky", **options(dbname, port=proxy.port))
    assert pg.query("SELECT 1 AS one").num_rows == 1  # a pooled connection through the proxy
    proxy.drop_after(300_000)
    big = "SELECT i, md5(i::text) AS h FROM generate_series(1, 1000000) AS i"
    received: list[int] = []
    with pytest.raises(ConnectionFailedError, match="closed the connection"):
        received.extend(batch.num_rows for batch in pg.stream(big, batch_size=1000))
    assert proxy.drops == 1
    assert sum(received) < 1_000_000
    assert pg.pool.open_connections == 0  # the broken connection was closed, not pooled
    # A drop under query() is transient: the retry opens a fresh connection and succeeds.
    proxy.drop_after(300_000)
    table = pg.query("SELECT i, md5(i::text) AS h FROM generate_series(1, 200000) AS i")
    assert table.num_rows == 200_000
    assert proxy.drops == 2
    assert pg.health().ok


# -- configuration ------------------------------------------------------------------------


def test_config_builds_a_uri_and_keeps_secrets() -> None:
    config = PostgresConfig(
        host="10.0.0.5", user="etl", password="p@ss/word", server_settings={"search_path": "a, b"}
    )
    uri = connection_uri(config)
    assert uri.startswith("postgresql://etl:p%40ss%2Fword@10.0.0.5:5432/postgres?sslmode=verify-full")
    assert "options=-c%20search_path%3Da%2C%5C%20b" in uri
    assert "p@ss" not in repr(config)
    socket_uri = connection_uri(PostgresConfig(host="/var/run/postgresql", dbname="x"))
    assert "host=%2Fvar%2Frun%2Fpostgresql" in socket_uri
    assert "sslmode=prefer" in socket_uri
    from_url = PostgresConfig(url="postgresql://u:pw@db.example.com/sales?sslmode=require", connect_timeout=3)
    assert connection_uri(from_url).startswith("postgresql://u:pw@db.example.com/sales?sslmode=require")
    assert "connect_timeout=3" in connection_uri(from_url)


def test_config_mistakes_are_configuration_errors(connector: CloudDataConnector) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        connect(connector, "x", url="postgresql://h/db", host="other")
    with pytest.raises(ConfigurationError, match="postgresql://"):
        connect(connector, "y", url="mysql://h/db")
    with pytest.raises(ConfigurationError, match="setting name"):
        connect(connector, "z", server_settings={"work_mem -c x": "1"})


def test_docs_examples_run(dbname: str, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert blocks
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(block.replace('dbname="postgres"', f'dbname="{dbname}"'), namespace)
    out = capsys.readouterr().out
    assert "batch sizes: [400, 400, 200]" in out


def test_a_malformed_url_is_a_configuration_error_that_never_shows_the_password(
    connector: CloudDataConnector,
) -> None:
    import traceback

    pg = connect(connector, "bad-url", url="postgresql://etl:s3cr%zzet@127.0.0.1:5432/db")
    with pytest.raises(ConfigurationError, match="percent-encode") as caught:
        pg.query("SELECT 1")
    told = "".join(traceback.format_exception(caught.value))
    assert "s3cr" not in told
    assert "zzet" not in told
    assert caught.value.__cause__ is None or "s3cr" not in str(caught.value.__cause__)


def test_a_write_whose_rollback_fails_does_not_return_its_connection(
    pg: PostgresConnector, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_load(*args: Any) -> int:
        raise ValueError("a bug in the load")

    def broken_rollback(connection: Any) -> None:
        raise RuntimeError("rollback failed too")

    pg.query("SELECT 1")  # one idle connection in the pool
    monkeypatch.setattr(pg, "_bulk_load", broken_load)
    monkeypatch.setattr(pg, "_rollback", broken_rollback)
    with pytest.raises(SygnifyError):
        pg.write(sample_table(3), table_name)
    monkeypatch.undo()
    assert pg._connections.open_connections == 0  # closed, not handed to the next user
    assert pg.query("SELECT 1 AS x").column("x").to_pylist() == [1]
