"""The bigquery connector against bqemulator (REST + gRPC Storage Read API), with the official SDKs.

Emulator limits worked around here (not in sygnify): the Storage Read API cannot read the
anonymous tables that hold query results (sygnify then falls back to REST pages, which is
exactly its documented behaviour), dry runs report 0 bytes, and a REPEATED column's NULL
comes back as ``[]`` over REST but ``None`` over gRPC.
"""

from __future__ import annotations

import datetime as dt
import decimal
import gc
import json
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import pyarrow as pa
import pytest

from sygnify import CloudDataConnector
from sygnify.connectors._sql.scan import translate_predicate
from sygnify.connectors.bigquery.connector import (
    DIALECT,
    BigQueryConnector,
    arrow_to_bigquery_schema,
    query_parameter,
)
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    OperationTimeoutError,
    QueryError,
    SchemaError,
)
from sygnify.testing.connectors import ConnectorConformance, sample_table
from tests.clouds.google_token import TokenEndpoint, service_account_key, token_endpoint
from tests.connectors.bigquery.conftest import emulator_options
from tests.emulators.bqemulator import BigQueryEmulator

pytestmark = pytest.mark.emulator

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


class TestBigQueryConformance(ConnectorConformance):
    missing_source = "no_such_dataset.no_such_table"

    @pytest.fixture
    def connection(self, bq: BigQueryConnector) -> BigQueryConnector:
        return bq

    @pytest.fixture
    def dataset_target(self, bq: BigQueryConnector, dataset: str) -> str:
        return f"{dataset}.conformance"


# -- queries and parameters ---------------------------------------------------------------


@pytest.fixture
def people(bq: BigQueryConnector, dataset: str) -> str:
    bq.write(
        pl.DataFrame({"id": [1, 2, 3], "name": ["ann", "bob", "x' OR '1'='1"], "score": [1.5, 2.5, None]}),
        f"{dataset}.people",
    )
    return f"{dataset}.people"


def test_named_and_positional_parameters(bq: BigQueryConnector, people: str) -> None:
    named = bq.query(
        f"SELECT id FROM `{people}` WHERE id >= @low AND name IN UNNEST(@names) ORDER BY id",
        {"low": 2, "names": ["bob", "ann"]},
    )
    assert named.column("id").to_pylist() == [2]
    positional = bq.query(f"SELECT name FROM `{people}` WHERE id = ?", [1])
    assert positional.to_pylist() == [{"name": "ann"}]


@pytest.mark.parametrize(
    "attempt",
    ["x' OR '1'='1", "ann' --", "'; DROP TABLE people; --", "\\' OR 1=1 #", "`people`"],
)
def test_sql_injection_through_parameters_matches_only_the_literal(
    bq: BigQueryConnector, people: str, attempt: str
) -> None:
    result = bq.query(f"SELECT name FROM `{people}` WHERE name = @name", {"name": attempt})
    expected = [{"name": attempt}] if attempt == "x' OR '1'='1" else []
    assert result.to_pylist() == expected
    assert bq.query(f"SELECT count(*) AS n FROM `{people}`").to_pylist() == [{"n": 3}]


def test_type_round_trips_through_parameters_and_tables(bq: BigQueryConnector, dataset: str) -> None:
    ts = dt.datetime(2024, 3, 1, 12, 30, tzinfo=dt.timezone.utc)
    row = bq.query(
        "SELECT @n AS n, @ts AS ts, @d AS d, @b AS b, @s AS s, @arr AS arr, @nul AS nul, "
        "JSON '{\"k\": [1, 2]}' AS j, STRUCT(1 AS x, 'y' AS y) AS st",
        {
            "n": decimal.Decimal("12345.678901234"),
            "ts": ts,
            "d": dt.date(2024, 3, 1),
            "b": True,
            "s": "é✓",
            "arr": [3, 1, 2],
            "nul": None,
        },
    )
    assert pa.types.is_decimal(row.schema.field("n").type)
    assert row.schema.field("ts").type.tz == "UTC"
    values = row.to_pylist()[0]
    assert values["n"] == decimal.Decimal("12345.678901234")
    assert values["ts"] == ts
    assert values["d"] == dt.date(2024, 3, 1)
    assert values["b"] is True
    assert values["s"] == "é✓"
    assert values["arr"] == [3, 1, 2]
    assert values["nul"] is None
    assert json.loads(values["j"]) == {"k": [1, 2]}
    assert values["st"] == {"x": 1, "y": "y"}

    table = pa.table(
        {
            "n": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(38, 9)),
            "ts": pa.array([ts, None], pa.timestamp("us", tz="UTC")),
            "tags": pa.array([["a", "b"], ["c"]], pa.list_(pa.string())),
            "st": pa.array([{"k": 1}, None], pa.struct({"k": pa.int64()})),
            "s": pa.array([None, "z"]),
        }
    )
    bq.write(table, f"{dataset}.types")
    back = pa.Table.from_batches(list(bq.stream(f"{dataset}.types")))  # gRPC Storage Read
    assert back.schema.field("ts").type.tz == "UTC"
    rows = sorted(back.to_pylist(), key=lambda r: r["s"] or "")
    assert rows[0] == {"n": decimal.Decimal("1.25"), "ts": ts, "tags": ["a", "b"], "st": {"k": 1}, "s": None}
    assert rows[1]["n"] is None
    assert rows[1]["ts"] is None
    assert rows[1]["st"] is None
    assert rows[1]["tags"] == ["c"]


def param_type(parameter: Any) -> str:
    return str(parameter.to_api_repr()["parameterType"]["type"])


def test_query_parameter_typing() -> None:
    assert param_type(query_parameter("x", decimal.Decimal("1.5"))) == "NUMERIC"
    assert param_type(query_parameter("x", decimal.Decimal("1." + "1" * 20))) == "BIGNUMERIC"
    assert param_type(query_parameter("x", dt.datetime(2024, 1, 1))) == "DATETIME"
    assert param_type(query_parameter("x", b"ab")) == "BYTES"
    with pytest.raises(ConfigurationError, match="element type"):
        query_parameter("x", [])
    with pytest.raises(ConfigurationError, match="ScalarQueryParameter"):
        query_parameter("x", object())


def test_arrow_schema_mapping_rejects_unmappable_types() -> None:
    fields = arrow_to_bigquery_schema(pa.schema({"t": pa.timestamp("us"), "d": pa.decimal256(76, 20)}))
    assert [f.field_type for f in fields] == ["DATETIME", "BIGNUMERIC"]
    with pytest.raises(SchemaError, match="'m'"):
        arrow_to_bigquery_schema(pa.schema({"m": pa.map_(pa.string(), pa.int64())}))


# -- streaming -------------------------------------------------------------------------------


def test_stream_of_a_query_result_falls_back_to_rest_pages_with_exact_batches(bq: BigQueryConnector) -> None:
    sql = "SELECT x, CAST(x AS STRING) AS s FROM UNNEST(GENERATE_ARRAY(1, @n)) AS x"
    sizes = [b.num_rows for b in bq.stream(sql, params={"n": 25_000}, batch_size=10_000)]
    assert sizes == [10_000, 10_000, 5_000]


@pytest.mark.slow
def test_one_million_rows_stream_with_bounded_memory(bq: BigQueryConnector, dataset: str) -> None:
    bq.query(
        f"CREATE TABLE `{dataset}.big` AS SELECT x AS id, x * 0.5 AS amount "
        "FROM UNNEST(GENERATE_ARRAY(1, 1000000)) AS x"
    )
    process = psutil.Process()
    gc.collect()
    baseline = process.memory_info().rss
    peak = baseline
    rows, total = 0, 0
    for batch in bq.stream(f"{dataset}.big", batch_size=100_000):
        assert batch.num_rows == 100_000
        rows += batch.num_rows
        total += pa.compute.sum(batch.column("id")).as_py()
        peak = max(peak, process.memory_info().rss)
    assert rows == 1_000_000
    assert total == 1_000_000 * 1_000_001 // 2
    # The whole result is ~16 MB of Arrow; streaming must not hold it all plus copies.
    assert peak - baseline < 200 * 2**20


def test_stream_projects_and_rejects_unknown_columns(bq: BigQueryConnector, people: str) -> None:
    batches = list(bq.stream(people, columns=["name"]))
    assert batches[0].schema.names == ["name"]
    with pytest.raises(SchemaError, match="nope"):
        list(bq.stream(people, columns=["nope"]))


# -- scan pushdown ------------------------------------------------------------------------


def test_scan_pushes_columns_and_filters_into_parameterized_sql(
    bq: BigQueryConnector, people: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, Any]] = []
    original = BigQueryConnector._start_query

    def spy(self: BigQueryConnector, sql: str, params: Any, *args: Any) -> Any:
        seen.append((sql, params))
        return original(self, sql, params, *args)

    monkeypatch.setattr(BigQueryConnector, "_start_query", spy)
    frame = bq.scan(people)
    result = frame.filter((pl.col("id") >= 2) & pl.col("name").is_in(["bob", "zed"])).select("name").collect()
    assert result.to_dicts() == [{"name": "bob"}]
    sql, params = seen[-1]
    assert sql.startswith("SELECT `id`, `name` FROM") or sql.startswith("SELECT `name`, `id` FROM")
    assert sql.endswith("WHERE (`id` >= @p0) AND (`name` IN (@p1, @p2))")
    assert params == {"p0": 2, "p1": "bob", "p2": "zed"}
    assert "bob" not in sql


def test_scan_applies_untranslatable_filters_in_polars(bq: BigQueryConnector, people: str) -> None:
    frame = bq.scan(people)
    result = frame.filter(pl.col("name").str.len_chars() == 3).sort("id").collect()
    assert result["name"].to_list() == ["ann", "bob"]
    assert frame.filter(pl.col("score").is_null()).collect()["id"].to_list() == [3]
    assert frame.select(pl.len()).collect().item() == 3
    assert frame.head(2).collect().height == 2


def test_predicate_translation_for_bigquery() -> None:
    pushed = translate_predicate(pl.col("a b") == "x`y", DIALECT)
    assert pushed.sql == "(`a b` = @p0)"


# -- writes, dry runs, listing -------------------------------------------------------------


def test_streaming_inserts_append_and_overwrite(bq: BigQueryConnector, dataset: str) -> None:
    target = f"{dataset}.events"
    result = bq.write(sample_table(1_200), target, method="insert_all")
    assert result.rows == 1_200
    bq.write(sample_table(3), target, method="insert_all", mode="append")
    assert bq.query(f"SELECT count(*) AS n FROM `{target}`").to_pylist() == [{"n": 1_203}]
    bq.write(sample_table(2), target, method="insert_all", mode="overwrite")
    assert bq.query(f"SELECT count(*) AS n FROM `{target}`").to_pylist() == [{"n": 2}]


def test_polars_and_pandas_data_load(bq: BigQueryConnector, dataset: str) -> None:
    pd = pytest.importorskip("pandas")
    bq.write(pl.DataFrame({"a": [1, 2]}), f"{dataset}.pl", mode="overwrite")
    bq.write(pd.DataFrame({"a": [3]}), f"{dataset}.pl")
    assert sorted(bq.query(f"SELECT a FROM `{dataset}.pl`").column("a").to_pylist()) == [1, 2, 3]


def test_dry_run_estimates_and_validates(bq: BigQueryConnector, people: str) -> None:
    estimate = bq.estimate(f"SELECT * FROM `{people}` WHERE id = @id", {"id": 1})
    assert isinstance(estimate, int)
    assert estimate >= 0
    with pytest.raises(QueryError, match="Syntax error"):
        bq.estimate("SELEC 1")


def test_list_tables_and_datasets(bq: BigQueryConnector, people: str, dataset: str) -> None:
    assert people in bq.list()
    assert bq.list(f"{dataset}.peo") == [people]
    assert bq.list("zzz_nothing") == []
    assert dataset in bq.datasets()


def test_job_labels_are_sent(bq: BigQueryConnector, monkeypatch: pytest.MonkeyPatch) -> None:
    captured: list[dict[str, str]] = []
    original = bq.client.query

    def spy(sql: str, job_config: Any = None, **kwargs: Any) -> Any:
        captured.append(dict(job_config.labels))
        return original(sql, job_config=job_config, **kwargs)

    monkeypatch.setattr(bq.client, "query", spy)
    bq.query("SELECT 1 AS x", labels={"run": "nightly"})
    assert captured == [{"run": "nightly"}]


# -- errors -----------------------------------------------------------------------------------


def test_bad_sql_and_missing_table_are_typed(bq: BigQueryConnector, dataset: str) -> None:
    with pytest.raises(QueryError, match="Syntax error"):
        bq.query("SELEC 1")
    with pytest.raises(NotFoundError, match="nope"):
        bq.query(f"SELECT * FROM `{dataset}.nope`")
    with pytest.raises(NotFoundError):
        bq.scan(f"{dataset}.nope")
    with pytest.raises(ConfigurationError, match="valid BigQuery table id"):
        list(bq.stream("ds.t; DROP TABLE x"))
    assert bq.breaker.state.value == "closed"  # user errors never open the breaker


def test_timeout_is_typed_and_cancels(bq: BigQueryConnector) -> None:
    sql = (
        "SELECT count(*) AS n FROM UNNEST(GENERATE_ARRAY(1, 3000)) a, UNNEST(GENERATE_ARRAY(1, 3000)) b, "
        "UNNEST(GENERATE_ARRAY(1, 20)) c"
    )
    with pytest.raises(OperationTimeoutError, match="did not finish"):
        bq.query(sql, timeout=0.01)


def test_unreachable_endpoint_opens_the_breaker(connector: CloudDataConnector) -> None:
    from sygnify.errors import CircuitOpenError, ConnectionFailedError

    dead = connector.connect(
        "bigquery",
        project="p",
        anonymous=True,
        endpoint="http://127.0.0.1:9",
        use_storage_api=False,
        retry={"max_attempts": 1, "initial_delay": 0},
        breaker={"failure_threshold": 2, "reset_timeout": 60},
    )
    for _ in range(2):
        with pytest.raises(ConnectionFailedError):
            dead.list()
    with pytest.raises(CircuitOpenError):
        dead.list()
    assert not dead.health().ok


# -- authentication --------------------------------------------------------------------------


@pytest.fixture
def token_server() -> Iterator[tuple[str, type[TokenEndpoint]]]:
    with token_endpoint() as running:
        yield running


def test_service_account_key_file_and_json_authenticate(
    connector: CloudDataConnector, emulator: BigQueryEmulator, token_server: Any, tmp_path: Any
) -> None:
    token_uri, _ = token_server
    key_json = service_account_key(token_uri)
    key_file = tmp_path / "key.json"
    key_file.write_text(key_json)
    base = emulator_options(emulator)
    base.pop("anonymous")
    base.pop("project")  # the project comes from the key
    from_file = connector.connect("bigquery", credentials_file=key_file, use_storage_api=False, **base)
    assert from_file.query("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    from_json = connector.connect("bigquery", credentials_json=key_json, use_storage_api=False, **base)
    assert from_json.query("SELECT 2 AS two").to_pylist() == [{"two": 2}]
    assert "PRIVATE KEY" not in repr(from_json)


def test_rejected_service_account_is_an_authentication_error(
    connector: CloudDataConnector, emulator: BigQueryEmulator, token_server: Any
) -> None:
    token_uri, handler = token_server
    handler.accept = False
    base = emulator_options(emulator)
    base.pop("anonymous")
    bq = connector.connect("bigquery", credentials_json=service_account_key(token_uri), **base)
    assert isinstance(bq, BigQueryConnector)
    with pytest.raises(AuthenticationError) as info:
        bq.query("SELECT 1")
    assert "PRIVATE KEY" not in str(info.value)
    assert bq.breaker.state.value == "closed"


def test_access_token_and_impersonation_configuration(
    connector: CloudDataConnector, emulator: BigQueryEmulator
) -> None:
    base = emulator_options(emulator)
    base.pop("anonymous")
    user = connector.connect("bigquery", access_token="ya29.secret-token", use_storage_api=False, **base)
    assert user.query("SELECT 3 AS three").to_pylist() == [{"three": 3}]
    assert "ya29" not in repr(user)
    impersonating = connector.connect(
        "bigquery",
        access_token="ya29.other",
        impersonate_service_account="target@p.iam.gserviceaccount.com",
        use_storage_api=False,
        **base,
    )
    assert isinstance(impersonating, BigQueryConnector)
    credentials: Any = impersonating.client._credentials
    assert type(credentials).__module__ == "google.auth.impersonated_credentials"
    assert credentials.service_account_email == "target@p.iam.gserviceaccount.com"


def test_the_old_oauth_token_name_still_connects(
    connector: CloudDataConnector, emulator: BigQueryEmulator
) -> None:
    base = emulator_options(emulator)
    base.pop("anonymous")
    with pytest.warns(DeprecationWarning, match="'oauth_token' is deprecated, use 'access_token'"):
        user = connector.connect("bigquery", oauth_token="ya29.secret-token", use_storage_api=False, **base)
    assert user.query("SELECT 3 AS three").to_pylist() == [{"three": 3}]
    assert "ya29" not in repr(user)


def test_bad_credentials_configuration_is_typed(connector: CloudDataConnector, tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="at most one"):
        connector.connect("bigquery", project="p", anonymous=True, access_token="t")
    with pytest.raises(ConfigurationError, match="does not exist"):
        connector.connect("bigquery", project="p", credentials_file=tmp_path / "missing.json")
    with pytest.raises(AuthenticationError, match="not valid") as info:
        connector.connect(
            "bigquery", project="p", credentials_json='{"type": "service_account", "x": "s3cr3t"}'
        )
    assert "s3cr3t" not in str(info.value)


def test_example_runs_against_the_emulator(
    emulator: BigQueryEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    options = emulator_options(emulator)
    options.pop("retry")
    monkeypatch.setattr(sys, "argv", ["bigquery_example.py", json.dumps(options)])
    runpy.run_path(str(EXAMPLES / "bigquery_example.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "loaded rows: 1000" in out
    assert "streamed rows: 1000" in out
    assert "per region: [{'region': 'apac', 'n': " in out
    assert "tables: ['sygnify_example.orders']" in out


def test_transient_errors_are_retried_and_user_errors_are_not(
    bq: BigQueryConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.api_core import exceptions as gexc

    calls: list[str] = []
    failures: list[Exception] = [gexc.ServiceUnavailable("backend blip")]  # type: ignore[no-untyped-call]
    original = bq.client.query

    def flaky(sql: str, **kwargs: Any) -> Any:
        calls.append(sql)
        if failures:
            raise failures.pop()
        return original(sql, **kwargs)

    monkeypatch.setattr(bq.client, "query", flaky)
    assert bq.query("SELECT 1 AS x").to_pylist() == [{"x": 1}]
    assert len(calls) == 2
    calls.clear()
    with pytest.raises(QueryError):
        bq.query("SELEC 1")
    assert len(calls) == 1


# -- idempotent loads ----------------------------------------------------------------------


class BigQueryJobIdShim:
    """Gives bqemulator BigQuery's job-id semantics, which it lacks for uploads.

    bqemulator ignores the job id of a load-by-upload (it names the job itself) and never
    answers 409. The shim records which id each real load was submitted under, answers a
    second submission of that id with 409 Already Exists, and serves ``get_job`` for it, as
    BigQuery does. ``lose`` is how many first answers are lost after the load went through.
    """

    def __init__(self, bq: BigQueryConnector, monkeypatch: pytest.MonkeyPatch, lose: int = 1) -> None:
        self.jobs: dict[str, Any] = {}
        self.submitted: list[str] = []
        self.lose = lose
        self._load = bq.client.load_table_from_file
        self._get_job = bq.client.get_job
        monkeypatch.setattr(bq.client, "load_table_from_file", self.load_table_from_file)
        monkeypatch.setattr(bq.client, "get_job", self.get_job)

    def load_table_from_file(self, source: Any, destination: str, *, job_id: str, **kwargs: Any) -> Any:
        import requests
        from google.api_core import exceptions as gexc

        self.submitted.append(job_id)
        if job_id in self.jobs:
            raise gexc.Conflict(f"Already Exists: Job test-proj:US.{job_id}")  # type: ignore[no-untyped-call]
        job = self._load(source, destination, **kwargs)
        job.result()
        self.jobs[job_id] = job
        if self.lose:
            self.lose -= 1
            raise requests.ConnectionError("connection reset by peer while reading the response")
        return job

    def get_job(self, job_id: str, **kwargs: Any) -> Any:
        return self.jobs[job_id] if job_id in self.jobs else self._get_job(job_id, **kwargs)


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_a_load_retried_after_its_answer_was_lost_loads_once(
    bq: BigQueryConnector, dataset: str, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    target = f"{dataset}.once"
    bq.write(pa.table({"id": [10, 11]}), target)
    shim = BigQueryJobIdShim(bq, monkeypatch)
    result = bq.write(pa.table({"id": [1, 2, 3]}), target, mode=mode)  # type: ignore[arg-type]
    first, retry = shim.submitted
    assert first == retry  # the retry reused the job id, got 409 and waited for that job
    assert first.startswith("sygnify_load_")
    ids = sorted(bq.query(f"SELECT id FROM `{target}`").column("id").to_pylist())
    assert ids == ([1, 2, 3] if mode == "overwrite" else [1, 2, 3, 10, 11])
    assert result.rows >= 3


def test_a_load_whose_earlier_job_failed_is_submitted_under_the_next_id(
    bq: BigQueryConnector, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    shim = BigQueryJobIdShim(bq, monkeypatch, lose=0)
    original = shim.load_table_from_file
    calls: list[str] = []

    def fail_first(source: Any, destination: str, *, job_id: str, **kwargs: Any) -> Any:
        if not calls:
            calls.append(job_id)
            shim.submitted.append(job_id)
            # The first attempt's job was created but was cancelled: it loaded nothing.
            shim.jobs[job_id] = type("Job", (), {"state": "DONE", "error_result": {"reason": "stopped"}})()
            raise requests.ConnectionError("connection reset")
        return original(source, destination, job_id=job_id, **kwargs)

    monkeypatch.setattr(bq.client, "load_table_from_file", fail_first)
    bq.write(pa.table({"id": [1, 2]}), f"{dataset}.again")
    base = shim.submitted[0]
    assert shim.submitted == [base, base, f"{base}_2"]
    assert bq.query(f"SELECT count(*) AS n FROM `{dataset}.again`").to_pylist() == [{"n": 2}]
