"""The snowflake connector against a fakesnow server, with the official snowflake-connector-python.

fakesnow server-mode bugs worked around here (never in sygnify): a NULL TIMESTAMP_TZ/NTZ is
read back as 1970-01-01 (NULL-ness is checked with ``IS NULL`` inside the server instead),
a result comes back as one chunk however large (so re-chunking is exercised hard), and
``CREATE TABLE IF NOT EXISTS`` on an existing table wipes that table's load history (the
idempotent-load test skips that statement on the retry, as Snowflake would in effect).
fakesnow also runs every statement to completion (it ignores statement timeouts and its
abort-request is a no-op), so timeouts are tested with a fault-injecting cursor.
"""

from __future__ import annotations

import datetime as dt
import decimal
import gc
import json
import runpy
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, cast

import polars as pl
import psutil
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sygnify import CloudDataConnector
from sygnify.connectors._sql.params import bind_params
from sygnify.connectors._sql.pool import ConnectionPool
from sygnify.connectors.snowflake import SnowflakeConnectionPool, named_to_qmark
from sygnify.connectors.snowflake.connector import (
    SnowflakeConfig,
    SnowflakeConnector,
    connect_arguments,
)
from sygnify.connectors.snowflake.errors import is_connection_failure
from sygnify.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    ConnectionFailedError,
    NotFoundError,
    OperationTimeoutError,
    QueryError,
    SchemaError,
    StatementTimeoutError,
)
from tests.connectors._emulated import emulator_fixtures
from tests.connectors.conformance import ConnectorConformance, sample_table
from tests.emulators.fakesnow import FakesnowServer, running_fakesnow

pytestmark = pytest.mark.emulator

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
FAST_RETRY = {"max_attempts": 2, "initial_delay": 0.001, "max_delay": 0.001, "jitter": 0.0}


fakesnow_server, server = emulator_fixtures(
    running_fakesnow, "fakesnow server could not be installed or started", session="fakesnow_server"
)


@pytest.fixture
def schema_name(server: FakesnowServer) -> str:
    return f"S_{uuid.uuid4().hex[:10].upper()}"


def options(server: FakesnowServer, schema_name: str, **extra: Any) -> dict[str, Any]:
    return {
        **server.connect_options(),
        "database": "SYGNIFY",
        "schema": schema_name,
        "warehouse": "TEST_WH",
        "retry": FAST_RETRY,
        "pool_size": 2,
        "network_timeout": 30,
        **extra,
    }


@pytest.fixture
def sf(connector: CloudDataConnector, server: FakesnowServer, schema_name: str) -> SnowflakeConnector:
    connection = connector.connect("snowflake", name="sf", **options(server, schema_name))
    assert isinstance(connection, SnowflakeConnector)
    connection.execute("CREATE DATABASE IF NOT EXISTS SYGNIFY")
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS SYGNIFY.{schema_name}")
    connection.execute(f"USE SCHEMA SYGNIFY.{schema_name}")
    return connection


class TestSnowflakeConformance(ConnectorConformance):
    missing_source = "NO_SUCH_TABLE"

    @pytest.fixture
    def connection(self, sf: SnowflakeConnector) -> SnowflakeConnector:
        return sf

    @pytest.fixture
    def dataset_target(self, sf: SnowflakeConnector) -> str:
        return "conformance"


@pytest.fixture
def people(sf: SnowflakeConnector) -> str:
    sf.write(
        pl.DataFrame({"id": [1, 2, 3], "name": ["ann", "bob", "x' OR '1'='1"], "score": [1.5, 2.5, None]}),
        "people",
    )
    return "people"


# -- parameters ---------------------------------------------------------------------------


def test_positional_and_named_parameters(sf: SnowflakeConnector, people: str) -> None:
    positional = sf.query('SELECT "id" FROM people WHERE "id" >= ? ORDER BY "id"', [2])
    assert positional.column("id").to_pylist() == [2, 3]
    named = sf.query(
        """SELECT "name" FROM people WHERE "id" = :id OR "name" = :name -- a :comment
        ORDER BY "id\"""",
        {"id": 1, "name": "bob"},
    )
    assert named.column("name").to_pylist() == ["ann", "bob"]
    with pytest.raises(QueryError, match="no 'missing'"):
        sf.query("SELECT :missing", {"other": 1})


@pytest.mark.parametrize(
    "attempt", ["x' OR '1'='1", "ann' --", "'; DROP TABLE people; --", "\\' OR 1=1 --", '"id"']
)
def test_sql_injection_through_parameters_matches_only_the_literal(
    sf: SnowflakeConnector, people: str, attempt: str
) -> None:
    result = sf.query('SELECT "name" FROM people WHERE "name" = ?', [attempt])
    expected = [{"name": attempt}] if attempt == "x' OR '1'='1" else []
    assert result.to_pylist() == expected
    named = sf.query('SELECT "name" FROM people WHERE "name" = :n', {"n": attempt})
    assert named.to_pylist() == expected
    assert sf.query("SELECT count(*) AS n FROM people").column(0).to_pylist() == [3]


def snowflake_bind(sql: str, params: Any) -> tuple[str, list[Any] | None]:
    """Parameters as the connector binds them (its declared style and string rules)."""
    return bind_params(
        sql, params, SnowflakeConnector.param_style, backslash_escapes=SnowflakeConnector.backslash_escapes
    )


def test_named_placeholders_skip_strings_comments_and_casts() -> None:
    sql, values = snowflake_bind(
        "SELECT ':a', \"x:a\", $$:a$$, v::int /* :a */ FROM t WHERE c = :a AND d=:b", {"a": 1, "b": 2}
    )
    assert sql == "SELECT ':a', \"x:a\", $$:a$$, v::int /* :a */ FROM t WHERE c = ? AND d=?"
    assert values == [1, 2]
    # Snowflake reads \' as a quote inside any string: the :b after it is still inside the string.
    assert snowflake_bind("SELECT 'it\\'s :b' WHERE x = :a", {"a": 1}) == (
        "SELECT 'it\\'s :b' WHERE x = ?",
        [1],
    )
    with pytest.raises(QueryError, match="not used"):
        snowflake_bind("SELECT 1", {"a": 1})


def test_old_names_still_work_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match="named_to_qmark"):
        assert named_to_qmark("SELECT :a, :a", {"a": 1}) == ("SELECT ?, ?", [1, 1])
    with pytest.warns(DeprecationWarning, match="SnowflakeConnectionPool"):
        pool = SnowflakeConnectionPool(FakeConnection, size=1, checkout_timeout=0.01)
    assert isinstance(pool, ConnectionPool)
    assert pool.kind == "snowflake"
    assert pool.is_failure is is_connection_failure
    pool.close()


# -- types ----------------------------------------------------------------------------------


def test_type_round_trips(sf: SnowflakeConnector) -> None:
    ts = dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.timezone.utc)
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "amount": pa.array([decimal.Decimal("12345.67"), None], pa.decimal128(12, 2)),
            "ts": pa.array([ts, None], pa.timestamp("us", tz="UTC")),
            "label": pa.array(["é✓", None]),
            "flag": pa.array([True, None]),
            "ratio": pa.array([0.25, None]),
            "day": pa.array([dt.date(2024, 3, 1), None]),
        }
    )
    assert sf.write(table, "typed").rows == 2
    back = sf.query('SELECT * FROM typed ORDER BY "id"')
    assert back.schema.field("amount").type == pa.decimal128(12, 2)
    assert back.schema.field("ts").type.tz is not None
    first, second = back.to_pylist()
    assert first["amount"] == decimal.Decimal("12345.67")
    assert first["ts"] == ts
    assert (first["label"], first["flag"], first["ratio"], first["day"]) == (
        "é✓",
        True,
        0.25,
        dt.date(2024, 3, 1),
    )
    assert (second["amount"], second["label"], second["flag"], second["ratio"], second["day"]) == (None,) * 5
    # fakesnow reads NULL timestamps back as 1970-01-01; check the stored NULL inside the server.
    assert sf.query('SELECT count(*) AS n FROM typed WHERE "ts" IS NULL').column(0).to_pylist() == [1]

    sf.execute("CREATE TABLE semistructured (v VARIANT, a ARRAY, o OBJECT)")
    sf.execute(
        "INSERT INTO semistructured SELECT PARSE_JSON(?), PARSE_JSON(?), PARSE_JSON(?)",
        ['{"nested": {"x": [1, null]}}', "[1, 2, 3]", '{"k": "v"}'],
    )
    sf.execute("INSERT INTO semistructured (v) SELECT NULL")
    semi = sf.query("SELECT * FROM semistructured ORDER BY v NULLS LAST").to_pylist()
    assert json.loads(semi[0]["V"]) == {"nested": {"x": [1, None]}}
    assert json.loads(semi[0]["A"]) == [1, 2, 3]
    assert json.loads(semi[0]["O"]) == {"k": "v"}
    assert semi[1] == {"V": None, "A": None, "O": None}


def test_unmappable_column_is_a_schema_error(sf: SnowflakeConnector) -> None:
    with pytest.raises(SchemaError, match="'m'"):
        sf.write(pa.table({"m": pa.array([{"a": 1}], pa.map_(pa.string(), pa.int64()))}), "bad")


# -- streaming ------------------------------------------------------------------------------


def test_server_chunks_are_rechunked_to_the_requested_size(sf: SnowflakeConnector) -> None:
    sf.write(sample_table(2_500), "chunks")
    sizes = [batch.num_rows for batch in sf.stream("SELECT * FROM chunks", batch_size=1_000)]
    assert sizes == [1_000, 1_000, 500]
    assert [b.num_rows for b in sf.stream("chunks", batch_size=700, columns=["id"])] == [700, 700, 700, 400]


@pytest.mark.slow
def test_one_million_rows_stream_with_bounded_memory(sf: SnowflakeConnector) -> None:
    process = psutil.Process()
    gc.collect()
    baseline = process.memory_info().rss
    peak, rows, total = baseline, 0, 0
    # fakesnow passes range() through to DuckDB; on Snowflake use TABLE(GENERATOR(...)).
    for batch in sf.stream(
        "SELECT range AS id, range * 0.5 AS amount FROM range(1000000)", batch_size=100_000
    ):
        assert batch.num_rows == 100_000
        assert batch.schema.field("ID").type == pa.int64()
        rows += batch.num_rows
        total += pa.compute.sum(batch.column("ID")).as_py()
        peak = max(peak, process.memory_info().rss)
    assert rows == 1_000_000
    assert total == 999_999 * 1_000_000 // 2
    assert peak - baseline < 300 * 2**20


def test_abandoned_stream_returns_its_connection(sf: SnowflakeConnector, people: str) -> None:
    stream = sf.stream(people, batch_size=1)
    next(stream)
    stream.close()
    results = []
    for _ in range(3):  # pool_size=2: would block if the stream had leaked its connection
        results.append(sf.query("SELECT 1 AS one").num_rows)
    assert results == [1, 1, 1]


def test_concurrent_queries_share_a_small_pool(sf: SnowflakeConnector, people: str) -> None:
    outcomes: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(3):
            rows = sf.query('SELECT * FROM people WHERE "id" > ?', [0]).num_rows
            with lock:
                outcomes.append(rows)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [3] * 12


# -- scan pushdown ------------------------------------------------------------------------


def test_scan_pushes_columns_filters_and_limits(
    sf: SnowflakeConnector, people: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, Any]] = []
    original = SnowflakeConnector._open_reader

    def spy(self: SnowflakeConnector, connection: Any, sql: str, params: Any) -> Any:
        seen.append((sql, params))
        return original(self, connection, sql, params)

    monkeypatch.setattr(SnowflakeConnector, "_open_reader", spy)
    frame = sf.scan(people)
    assert frame.collect_schema()["id"] == pl.Int64
    result = frame.filter((pl.col("id") >= 2) & pl.col("name").is_in(["bob", "zed"])).select("name").collect()
    assert result.to_dicts() == [{"name": "bob"}]
    sql, params = seen[-1]
    assert sql == 'SELECT "id", "name" FROM "PEOPLE" WHERE ("id" >= ?) AND ("name" IN (?, ?))'
    assert params == [2, "bob", "zed"]
    assert frame.filter(pl.col("score").is_null()).collect()["id"].to_list() == [3]
    assert frame.filter(pl.col("name").str.len_chars() == 3).sort("id").collect()["id"].to_list() == [1, 2]
    frame.head(1).collect()
    assert seen[-1][0].endswith("LIMIT 1")


# -- errors and auth ----------------------------------------------------------------------


def test_bad_sql_and_missing_table_are_typed(sf: SnowflakeConnector) -> None:
    with pytest.raises(QueryError):
        sf.query("SELEC 1")
    with pytest.raises(NotFoundError):
        sf.query("SELECT * FROM no_such_table")
    with pytest.raises(NotFoundError):
        sf.scan("no_such_table")
    with pytest.raises(ConfigurationError, match="not a table name"):
        list(sf.stream("t; DROP TABLE x"))
    assert sf.breaker.state.value == "closed"


def test_unreachable_account_is_transient_and_opens_the_breaker(connector: CloudDataConnector) -> None:
    dead = connector.connect(
        "snowflake",
        account="nowhere",
        user="u",
        password="p",
        host="127.0.0.1",
        port=9,
        protocol="http",
        login_timeout=1,
        retry={"max_attempts": 1, "initial_delay": 0},
        breaker={"failure_threshold": 1, "reset_timeout": 60},
    )
    with pytest.raises((ConnectionFailedError, OperationTimeoutError)):
        dead.query("SELECT 1")
    with pytest.raises(CircuitOpenError):
        dead.query("SELECT 1")


def encrypted_key(tmp_path: Path, passphrase: bytes) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "rsa_key.p8"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
    )
    return path


def test_key_pair_authentication(
    connector: CloudDataConnector, server: FakesnowServer, schema_name: str, tmp_path: Path
) -> None:
    key = encrypted_key(tmp_path, b"correct horse")
    base = options(server, schema_name)
    base.pop("password")
    sf = connector.connect("snowflake", private_key_file=key, private_key_file_pwd="correct horse", **base)
    assert sf.query("SELECT 1 AS one").column(0).to_pylist() == [1]
    assert "correct horse" not in repr(sf)
    with pytest.raises(AuthenticationError, match="passphrase") as info:
        connector.connect(
            "snowflake", private_key_file=key, private_key_file_pwd="not-the-pass-42", **base
        ).query("SELECT 1")
    assert "not-the-pass-42" not in str(info.value)


def test_oauth_and_password_arguments(server: FakesnowServer, schema_name: str) -> None:
    base = options(server, schema_name)
    base.pop("password")
    config = SnowflakeConfig(token="oauth-secret", **base)
    assert connect_arguments(config)["authenticator"] == "oauth"
    assert "oauth-secret" not in repr(config)
    password = SnowflakeConfig(**options(server, schema_name))
    args = connect_arguments(password)
    assert args["password"] == "snow"
    assert args["paramstyle"] == "qmark"
    assert args["client_session_keep_alive"] is True
    assert (args["warehouse"], args["database"], args["schema"]) == ("TEST_WH", "SYGNIFY", schema_name)
    browser = SnowflakeConfig(account="a", user="me@example.com", authenticator="externalbrowser")
    assert connect_arguments(browser)["authenticator"] == "externalbrowser"


def test_oauth_token_connects(
    connector: CloudDataConnector, server: FakesnowServer, schema_name: str
) -> None:
    base = options(server, schema_name)
    base.pop("password")
    sf = connector.connect("snowflake", token="oauth-secret", **base)
    assert sf.query("SELECT 2 AS two").column(0).to_pylist() == [2]


def test_incomplete_auth_is_a_configuration_error(connector: CloudDataConnector) -> None:
    with pytest.raises(ConfigurationError, match="password"):
        connector.connect("snowflake", account="a", user="u")
    with pytest.raises(ConfigurationError, match="needs user"):
        connector.connect("snowflake", account="a", password="p")


# -- the pool (no server needed) -----------------------------------------------------------


class FakeConnection:
    def __init__(self) -> None:
        self.closed = False

    def is_closed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def fail_on(pool: ConnectionPool, error: Exception) -> None:
    with pool.connection():
        raise error


def test_the_pool_is_the_shared_one_and_drops_connections_snowflake_reports_broken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from snowflake.connector.errors import OperationalError, ProgrammingError

    made: list[FakeConnection] = []

    def connect(self: SnowflakeConnector) -> FakeConnection:
        made.append(FakeConnection())
        return made[-1]

    monkeypatch.setattr(SnowflakeConnector, "_connect", connect)
    sf = SnowflakeConnector(
        SnowflakeConfig(account="a", user="u", password="p", pool_size=1, checkout_timeout=5.0)
    )
    try:
        pool = sf.pool
        assert isinstance(pool, ConnectionPool)
        assert (pool.kind, pool.size, pool.checkout_timeout) == ("snowflake", 1, 5.0)
        with pytest.raises(ProgrammingError):
            fail_on(pool, ProgrammingError(msg="syntax error"))  # a statement failed: the session is fine
        assert not made[0].closed
        with pytest.raises(OperationalError):
            fail_on(pool, OperationalError(msg="connection reset by peer"))
        assert made[0].closed
        with pool.connection() as connection:
            assert connection is made[1]
        assert len(made) == 2
    finally:
        sf.close()


def test_example_runs_against_fakesnow(
    server: FakesnowServer,
    schema_name: str,
    sf: SnowflakeConnector,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example_options = {**server.connect_options(), "database": "SYGNIFY", "schema": schema_name}
    monkeypatch.setattr(sys, "argv", ["snowflake_example.py", json.dumps(example_options)])
    runpy.run_path(str(EXAMPLES / "snowflake_example.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "loaded rows: 1000" in out
    assert "batch sizes: [300, 300, 300, 100]" in out
    assert "per region: [{'region': 'apac', 'N': " in out


def test_transient_errors_are_retried_and_user_errors_are_not(
    sf: SnowflakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snowflake.connector.errors import OperationalError

    attempts: list[str] = []
    failures = [OperationalError(msg="connection reset by peer", errno=250003)]
    original = ConnectionPool.checkout

    def flaky(self: ConnectionPool) -> Any:
        attempts.append("checkout")
        if failures:
            raise failures.pop()
        return original(self)

    monkeypatch.setattr(ConnectionPool, "checkout", flaky)
    assert sf.query("SELECT 1 AS one").column(0).to_pylist() == [1]
    assert len(attempts) == 2
    attempts.clear()
    with pytest.raises(QueryError):
        sf.query("SELEC 1")
    assert len(attempts) == 1


# -- semi-structured writes, statement timeouts, idempotent loads ----------------------------


def test_list_and_struct_columns_round_trip_through_array_and_object(sf: SnowflakeConnector) -> None:
    table = pa.table(
        {
            "id": [1, 2, 3],
            "tags": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
            "nums": pa.array([[1, None], [2], None], pa.list_(pa.int64())),
            "point": pa.array(
                [{"x": 1, "label": "p"}, None, {"x": None, "label": "q"}],
                pa.struct({"x": pa.int64(), "label": pa.string()}),
            ),
        }
    )
    assert sf.write(table, "semis").rows == 3
    back = sf.query('SELECT * FROM semis ORDER BY "id"')
    # Snowflake (and the connector) hand ARRAY/OBJECT/VARIANT values over as JSON text.
    assert back.schema.field("tags").type == pa.string()
    decoded = pl.from_arrow(back)
    assert isinstance(decoded, pl.DataFrame)
    decoded = decoded.with_columns(
        pl.col("tags").str.json_decode(pl.List(pl.String)),
        pl.col("nums").str.json_decode(pl.List(pl.Int64)),
        pl.col("point").str.json_decode(pl.Struct({"x": pl.Int64, "label": pl.String})),
    )
    assert decoded.to_arrow().cast(table.schema).to_pylist() == table.to_pylist()
    # The values are real semi-structured values inside the server, not strings.
    inside = sf.query(
        'SELECT ARRAY_SIZE("tags") AS n, "point":label::string AS label FROM semis ORDER BY "id"'
    )
    assert inside.to_pylist() == [{"N": 2, "LABEL": "p"}, {"N": 0, "LABEL": None}, {"N": None, "LABEL": "q"}]


class FaultyCursor:
    """A real cursor whose ``execute`` goes through ``hook(sql, run)``, to inject failures."""

    def __init__(self, cursor: Any, hook: Any) -> None:
        self._cursor = cursor
        self._hook = hook

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return self._hook(sql, kwargs, lambda: self._cursor.execute(sql, *args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class FaultyConnection:
    def __init__(self, connection: Any, hook: Any) -> None:
        self._connection = connection
        self._hook = hook

    def cursor(self) -> FaultyCursor:
        return FaultyCursor(self._connection.cursor(), self._hook)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def inject(monkeypatch: pytest.MonkeyPatch, hook: Any) -> None:
    """Route every cursor of every pooled connection through ``hook``."""
    original = ConnectionPool.checkout

    def checkout(self: ConnectionPool) -> Any:
        connection = original(self)
        return connection if isinstance(connection, FaultyConnection) else FaultyConnection(connection, hook)

    monkeypatch.setattr(ConnectionPool, "checkout", checkout)


def test_query_timeout_reaches_the_server_and_the_cursor(
    connector: CloudDataConnector, server: FakesnowServer, schema_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SnowflakeConfig(**options(server, schema_name, query_timeout=7))
    assert connect_arguments(config)["session_parameters"] == {"STATEMENT_TIMEOUT_IN_SECONDS": 7}
    explicit = SnowflakeConfig(
        **options(
            server, schema_name, query_timeout=7, session_parameters={"STATEMENT_TIMEOUT_IN_SECONDS": 60}
        )
    )
    assert connect_arguments(explicit)["session_parameters"] == {"STATEMENT_TIMEOUT_IN_SECONDS": 60}
    timeouts: list[Any] = []

    def record(sql: str, kwargs: dict[str, Any], run: Any) -> Any:
        timeouts.append(kwargs.get("timeout"))
        return run()

    inject(monkeypatch, record)
    sf = connector.connect("snowflake", **options(server, schema_name, query_timeout=7))
    assert sf.query("SELECT 1 AS one").column(0).to_pylist() == [1]  # the session parameter is accepted
    assert timeouts == [7]


@pytest.mark.parametrize(
    ("errno", "message"),
    [
        (630, "Statement reached its statement or warehouse timeout of 1 second(s) and was canceled."),
        (604, "SQL execution was cancelled by the client due to a timeout. SQL execution canceled"),
    ],
)
def test_a_statement_past_its_timeout_is_an_operation_timeout(
    connector: CloudDataConnector,
    server: FakesnowServer,
    schema_name: str,
    monkeypatch: pytest.MonkeyPatch,
    errno: int,
    message: str,
) -> None:
    # fakesnow runs every statement to completion (its abort-request is a no-op and it ignores
    # STATEMENT_TIMEOUT_IN_SECONDS), so the server's answer to a timed-out statement is injected.
    from snowflake.connector.errors import ProgrammingError

    attempts: list[str] = []

    def time_out(sql: str, kwargs: dict[str, Any], run: Any) -> Any:
        if "slow_marker" in sql:
            attempts.append(sql)
            raise ProgrammingError(msg=message, errno=errno, sqlstate="57014")
        return run()

    inject(monkeypatch, time_out)
    sf = connector.connect("snowflake", **options(server, schema_name, query_timeout=1))
    with pytest.raises(StatementTimeoutError, match="timeout") as info:
        sf.query("SELECT 1 AS slow_marker")
    assert isinstance(info.value, OperationTimeoutError)
    assert isinstance(info.value.__cause__, ProgrammingError)
    assert len(attempts) == 1  # never retried: a retry would run (and bill) the statement again
    assert sf.query("SELECT 1 AS fine").column(0).to_pylist() == [1]  # the pool is still usable


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_a_write_retried_after_its_commit_answer_was_lost_loads_once(
    sf: SnowflakeConnector, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    from snowflake.connector.errors import OperationalError

    sf.write(pa.table({"id": [10, 11, 12, 13, 14]}), "once")
    lost: list[str] = []
    copies: list[str] = []

    def lose_first_commit_answer(sql: str, kwargs: dict[str, Any], run: Any) -> Any:
        if lost and sql.startswith("CREATE TABLE IF NOT EXISTS"):
            # fakesnow bug: CREATE TABLE IF NOT EXISTS on an existing table wipes its load
            # history; on Snowflake it is a no-op, which is what this emulates.
            return None
        result = run()
        if sql.startswith("COPY INTO"):
            copies.append(sql)
        if sql == "COMMIT" and not lost:
            lost.append(sql)  # committed on the server; the client never hears back
            raise OperationalError(msg="connection reset by peer", errno=250003)
        return result

    inject(monkeypatch, lose_first_commit_answer)
    result = sf.write(pa.table({"id": [1, 2, 3]}), "once", mode=cast(Any, mode))
    assert lost == ["COMMIT"]
    assert len(copies) == 2
    assert copies[0] == copies[1]  # the same stage, so the same staged file
    assert result.rows == 3
    ids = sorted(sf.query('SELECT "id" FROM once').column(0).to_pylist())
    assert ids == ([1, 2, 3] if mode == "overwrite" else [1, 2, 3, 10, 11, 12, 13, 14])


# -- issue 16: no pandas, empty results, eager streams, pool timeouts, driver retries ------


def test_reads_never_need_pandas(
    sf: SnowflakeConnector, people: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snowflake.connector.cursor import SnowflakeCursor

    def needs_pandas(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("fetch_arrow_all needs the driver's pandas extra")

    # The snowflake extra installs no pandas, so neither path may go through fetch_arrow_all
    # (tests/extras/test_snowflake_only.py checks it in an environment without pandas).
    monkeypatch.setattr(SnowflakeCursor, "fetch_arrow_all", needs_pandas)
    monkeypatch.setattr(SnowflakeCursor, "fetch_pandas_all", needs_pandas)
    assert sf.query('SELECT "id" FROM people ORDER BY "id"').column(0).to_pylist() == [1, 2, 3]
    assert sum(batch.num_rows for batch in sf.stream(people, batch_size=2)) == 3


def test_an_empty_result_keeps_its_schema(sf: SnowflakeConnector, people: str) -> None:
    empty = sf.query('SELECT "id", "name" FROM people WHERE "id" > 99')
    assert empty.num_rows == 0
    assert empty.schema == pa.schema([("id", pa.int64()), ("name", pa.string())])
    batches = list(sf.stream('SELECT "id", "score" FROM people WHERE "id" > ?', params=[99]))
    assert [batch.num_rows for batch in batches] == [0]
    assert batches[0].schema == pa.schema([("id", pa.int64()), ("score", pa.float64())])
    assert [b.schema.names for b in sf.stream(people, columns=["name"], batch_size=10)] == [["name"]]


def test_stream_rejects_a_missing_table_when_called(sf: SnowflakeConnector, people: str) -> None:
    with pytest.raises(NotFoundError):
        sf.stream("NO_SUCH_TABLE")  # no next(): the statement ran at the call
    with pytest.raises(QueryError):
        sf.stream("SELECT * FROM people WHERE")
    # A stream opened and dropped unread gives its connection back (pool_size=2).
    for _ in range(3):
        unread = sf.stream(people)
        del unread
        gc.collect()
    assert [sf.query("SELECT 1 AS one").num_rows for _ in range(3)] == [1, 1, 1]
    assert sf.pool.open_connections <= 2


def test_a_pool_checkout_timeout_is_not_retried(
    connector: CloudDataConnector, server: FakesnowServer, schema_name: str, people: str
) -> None:
    from sygnify.connectors.snowflake import PoolExhaustedError

    busy = connector.connect(
        "snowflake",
        name="busy",
        **options(
            server,
            schema_name,
            pool_size=1,
            checkout_timeout=0.5,
            retry={"max_attempts": 4, "initial_delay": 0.01, "jitter": 0},
        ),
    )
    assert isinstance(busy, SnowflakeConnector)
    held = busy.stream(people, batch_size=1)  # holds the only connection
    started = time.monotonic()
    with pytest.raises(PoolExhaustedError, match="pool_size=1") as caught:
        busy.query("SELECT 1 AS one")
    elapsed = time.monotonic() - started
    assert not isinstance(caught.value, OperationTimeoutError)  # not a TransientError
    assert 0.5 <= elapsed < 1.0  # one wait of checkout_timeout, not four
    assert busy.breaker.state.value == "closed"  # the service did not fail
    held.close()
    assert busy.query("SELECT 1 AS one").num_rows == 1


def test_the_drivers_own_http_retries_are_bounded(
    connector: CloudDataConnector, server: FakesnowServer, schema_name: str
) -> None:
    from tests.connectors.snowflake._http_proxy import FailingProxy

    proxy = FailingProxy(server.host, server.port)
    try:
        flaky = connector.connect(
            "snowflake",
            name="through-proxy",
            **{
                **options(server, schema_name, port=proxy.port, driver_retries=1),
                "retry": {"max_attempts": 3, "initial_delay": 0.01, "max_delay": 0.01, "jitter": 0},
                "breaker": {"failure_threshold": 10},
            },
        )
        assert flaky.query("SELECT 1 AS one").num_rows == 1  # logged in through the proxy
        proxy.failing = True
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError, match="gave up"):
            flaky.query("SELECT 2 AS two")
        elapsed = time.monotonic() - started
        # 3 sygnify attempts x (1 + driver_retries) driver attempts, and no more.
        assert len(proxy.failed_at) == 6
        assert elapsed < 10  # the driver's default would retry the 503s without end
        proxy.failing = False
        assert flaky.query("SELECT 3 AS three").num_rows == 1
    finally:
        proxy.stop()


def test_driver_retries_reach_the_connect_arguments() -> None:
    config = SnowflakeConfig(account="a", user="u", password="p", driver_retries=2)
    waits = connect_arguments(config)["backoff_policy"]()
    assert [next(waits) for _ in range(3)] == [0.5, 1.0, 0.0]
    with pytest.raises(Exception, match="gave up on an HTTP request after 3 attempt"):
        next(waits)
