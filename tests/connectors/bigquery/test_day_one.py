"""What a new BigQuery user hits on day one (issue 16), over the wire against bqemulator.

REST result pages past the first, DATETIME/JSON columns in ``scan()``, jobs a timeout or a
retry must not submit twice, ``head(n)`` as a free table read, INT64 parameters, empty
results with their schema, and NaN in pushed filters.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Callable
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from sygnify import CloudDataConnector
from sygnify.connectors._sql.scan import translate_predicate
from sygnify.connectors.bigquery.connector import DIALECT, BigQueryConnector
from sygnify.errors import ConfigurationError, OperationTimeoutError
from tests.connectors.bigquery.conftest import emulator_options
from tests.emulators.bqemulator import BigQueryEmulator

pytestmark = pytest.mark.emulator

ROWS = 5_000


class JobSpy:
    """Records every query job the connection submits (``client.query``) and its job id."""

    def __init__(self, bq: BigQueryConnector, monkeypatch: pytest.MonkeyPatch) -> None:
        self.job_ids: list[str | None] = []
        self.sql: list[str] = []
        self._query = bq.client.query
        monkeypatch.setattr(bq.client, "query", self.query)

    def query(self, sql: str, **kwargs: Any) -> Any:
        self.job_ids.append(kwargs.get("job_id"))
        self.sql.append(sql)
        return self._query(sql, **kwargs)


def connect(connector: CloudDataConnector, emulator: BigQueryEmulator, dataset: str, **extra: Any) -> Any:
    connection = connector.connect("bigquery", **emulator_options(emulator, dataset=dataset, **extra))
    assert isinstance(connection, BigQueryConnector)
    connection.client.create_dataset(dataset, exists_ok=True)
    return connection


# -- 2. REST result pages after the first --------------------------------------------------


@pytest.fixture
def paged(
    connector: CloudDataConnector, emulator: BigQueryEmulator, bq: BigQueryConnector, dataset: str
) -> Any:
    """A connection reading 1,000-row REST pages, and a 5,000-row table ``five``.

    The Storage Read API is on, but it cannot read a query's result table here (as for a
    user without Storage Read permission), so results come back over the REST fallback.
    """
    bq.query(f"CREATE TABLE `{dataset}.five` AS SELECT x AS id FROM UNNEST(GENERATE_ARRAY(1, {ROWS})) AS x")
    return connect(connector, emulator, dataset, name="paged", page_size=1_000)


READS: dict[str, Callable[[Any, str], list[int]]] = {
    "query": lambda bq, ds: bq.query(f"SELECT * FROM `{ds}.five`").column("id").to_pylist(),
    "stream": lambda bq, ds: [
        value for batch in bq.stream(f"SELECT * FROM `{ds}.five`") for value in batch.column("id").to_pylist()
    ],
    "scan_filter": lambda bq, ds: bq.scan(f"{ds}.five").filter(pl.col("id") > 0).collect()["id"].to_list(),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_rest_fallback_reads_every_page_exactly_once(paged: Any, dataset: str, read: str) -> None:
    ids = READS[read](paged, dataset)
    assert len(ids) == ROWS
    assert sorted(ids) == list(range(1, ROWS + 1))


class NoStorageReadPermission:
    """A Storage Read client whose caller lacks ``bigquery.readsessions.create``."""

    def create_read_session(self, *args: Any, **kwargs: Any) -> Any:
        raise gexc.PermissionDenied("bigquery.readsessions.create denied")  # type: ignore[no-untyped-call]


def test_table_reads_fall_back_to_rest_pages_without_storage_read_permission(
    paged: Any, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paged._clients, "storage", NoStorageReadPermission())
    batches = list(paged.stream(f"{dataset}.five", batch_size=2_000))
    assert [batch.num_rows for batch in batches] == [2_000, 2_000, 1_000]
    ids = [value for batch in batches for value in batch.column("id").to_pylist()]
    assert sorted(ids) == list(range(1, ROWS + 1))
    assert paged.scan(f"{dataset}.five").collect().height == ROWS


# -- 3. DATETIME and the client's other extension types -------------------------------------


@pytest.fixture
def typed(bq: BigQueryConnector, dataset: str) -> str:
    bq.query(
        f"CREATE TABLE `{dataset}.typed` AS SELECT 1 AS id, DATETIME '2024-03-01 12:30:00' AS at, "
        "JSON '{\"k\": 1}' AS doc, [DATETIME '2024-03-02 00:00:00'] AS ats, "
        "STRUCT(DATETIME '2024-03-03 00:00:00' AS at) AS nested"
    )
    return f"{dataset}.typed"


def no_extension_marks(schema: pa.Schema) -> bool:
    return "google:sqlType" not in schema.to_string(show_field_metadata=True)


def test_scan_of_datetime_columns_gives_plain_polars_datetimes(bq: BigQueryConnector, typed: str) -> None:
    frame = bq.scan(typed)
    assert frame.collect_schema()["at"] == pl.Datetime("us")
    collected = frame.collect()
    assert collected["at"].to_list()[0].year == 2024
    assert collected.select(pl.col("at").dt.year()).item() == 2024
    assert collected.select(pl.col("at").cast(pl.Date)).item().isoformat() == "2024-03-01"
    assert collected.select(pl.col("ats").list.first().dt.day()).item() == 2
    assert collected.select(pl.col("nested").struct.field("at").dt.day()).item() == 3
    assert '"k"' in collected["doc"][0]  # JSON is a string
    filtered = frame.filter(pl.col("id") == 1).select(pl.col("at").dt.month()).collect()  # a query job
    assert filtered.item() == 3


def test_query_and_stream_results_carry_no_extension_types(bq: BigQueryConnector, typed: str) -> None:
    assert no_extension_marks(bq.query(f"SELECT * FROM `{typed}`").schema)
    for batch in bq.stream(f"SELECT * FROM `{typed}`"):
        assert no_extension_marks(batch.schema)
    assert pl.from_arrow(bq.query(f"SELECT at FROM `{typed}`")).schema["at"] == pl.Datetime("us")  # type: ignore[union-attr]


# -- 4. billing traps: a timeout or retry never submits a job twice; head(n) runs no job -------

SLOW_SQL = (
    "SELECT COUNT(DISTINCT CONCAT(CAST(a AS STRING), '-', CAST(b AS STRING))) AS n "
    "FROM UNNEST(GENERATE_ARRAY(1, 4000)) a, UNNEST(GENERATE_ARRAY(1, 1000)) b"
)
PATIENT_RETRY = {"max_attempts": 4, "initial_delay": 0.001, "max_delay": 0.001, "jitter": 0.0}


@pytest.fixture
def open_bq(connector: CloudDataConnector, emulator: BigQueryEmulator, dataset: str) -> Callable[..., Any]:
    """``open_bq(name, **options)``: a connection that retries up to 4 times (the default policy)."""
    return lambda name, **extra: connect(
        connector, emulator, dataset, name=name, retry=PATIENT_RETRY, **extra
    )


def test_a_timed_out_query_submits_one_job_and_is_not_retried(
    open_bq: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bq = open_bq("patient")
    spy = JobSpy(bq, monkeypatch)
    before = {job.job_id for job in bq.client.list_jobs()}
    with pytest.raises(OperationTimeoutError, match=r"did not finish within 0\.1 s; it was cancelled"):
        bq.query(SLOW_SQL, timeout=0.1)
    assert len(spy.job_ids) == 1
    (job_id,) = spy.job_ids
    assert job_id is not None
    assert job_id.startswith("sygnify_query_")
    received = {job.job_id for job in bq.client.list_jobs()} - before
    assert received <= {job_id}  # the emulator received this one job at most (none was resubmitted)
    assert bq.breaker.state.value == "closed"


def test_a_job_still_running_at_the_deadline_is_cancelled_not_resubmitted(
    open_bq: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bq = open_bq("running")
    spy = JobSpy(bq, monkeypatch)
    cancelled: list[str] = []
    cancel_job = bq.client.cancel_job

    def still_running(self: Any, *args: Any, **kwargs: Any) -> Any:
        # What real BigQuery does: insert answers at once, the job runs past the deadline.
        raise concurrent.futures.TimeoutError

    def spy_cancel(job_id: str, **kwargs: Any) -> Any:
        cancelled.append(job_id)
        return cancel_job(job_id, **kwargs)

    monkeypatch.setattr(bigquery.QueryJob, "result", still_running)
    monkeypatch.setattr(bq.client, "cancel_job", spy_cancel)
    with pytest.raises(OperationTimeoutError, match="cancelled"):
        bq.query("SELECT 1 AS x", timeout=5)
    assert len(spy.job_ids) == 1
    assert cancelled == spy.job_ids


def test_a_job_bigquery_stopped_at_its_job_timeout_is_not_run_again(
    open_bq: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bq = open_bq("capped", job_timeout=60)
    spy = JobSpy(bq, monkeypatch)

    def stopped(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise gexc.BadRequest(  # type: ignore[no-untyped-call]
            "Job timed out after 60 s", errors=[{"reason": "timeout", "message": "Job timed out"}]
        )

    monkeypatch.setattr(bigquery.QueryJob, "result", stopped)
    with pytest.raises(OperationTimeoutError):
        bq.query("SELECT 1 AS x")
    assert len(spy.job_ids) == 1


def test_a_load_still_running_at_its_job_timeout_is_cancelled_not_loaded_again(
    open_bq: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bq = open_bq("slow_load", job_timeout=5)
    submitted: list[str] = []
    cancelled: list[str] = []
    load, cancel_job = bq.client.load_table_from_file, bq.client.cancel_job

    def spy_load(source: Any, destination: str, *, job_id: str, **kwargs: Any) -> Any:
        submitted.append(job_id)
        return load(source, destination, job_id=job_id, **kwargs)

    def spy_cancel(job_id: str, **kwargs: Any) -> Any:
        cancelled.append(job_id)
        return cancel_job(job_id, **kwargs)

    def still_running(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise concurrent.futures.TimeoutError

    monkeypatch.setattr(bq.client, "load_table_from_file", spy_load)
    monkeypatch.setattr(bq.client, "cancel_job", spy_cancel)
    monkeypatch.setattr(bigquery.LoadJob, "result", still_running)
    with pytest.raises(OperationTimeoutError, match="cancelled"):
        bq.write(pa.table({"id": [1, 2]}), "loaded")
    assert len(submitted) == 1
    assert cancelled == submitted


def test_a_query_retried_after_a_lost_answer_resubmits_the_same_job_id(
    open_bq: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bq = open_bq("lossy")
    spy = JobSpy(bq, monkeypatch)
    lose = [True]
    original = spy.query

    def lossy(sql: str, **kwargs: Any) -> Any:
        job = original(sql, **kwargs)
        if lose:
            lose.pop()
            raise requests.ConnectionError("connection reset by peer while reading the response")
        return job

    monkeypatch.setattr(bq.client, "query", lossy)
    assert bq.query("SELECT 7 AS x").to_pylist() == [{"x": 7}]
    first, retry = spy.job_ids
    assert first == retry  # real BigQuery answers 409 and the retry waits for that job


def test_an_existing_job_is_waited_for_not_run_again(
    bq: BigQueryConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bqemulator never answers 409 for a reused job id; BigQuery does, and the job is then fetched.
    fetched: list[str] = []
    seen: dict[str, Any] = {}
    original, get_job = bq.client.query, bq.client.get_job

    def query(sql: str, *, job_id: str, **kwargs: Any) -> Any:
        if job_id in seen:
            raise gexc.Conflict(f"Already Exists: Job test-proj:US.{job_id}")  # type: ignore[no-untyped-call]
        seen[job_id] = original(sql, job_id=job_id, **kwargs)
        raise requests.ConnectionError("answer lost")

    def fetch(job_id: str, **kwargs: Any) -> Any:
        fetched.append(job_id)
        return get_job(job_id, **kwargs)

    monkeypatch.setattr(bq.client, "query", query)
    monkeypatch.setattr(bq.client, "get_job", fetch)
    assert bq.query("SELECT 8 AS x").to_pylist() == [{"x": 8}]
    assert fetched == list(seen)


@pytest.fixture
def people(bq: BigQueryConnector, dataset: str) -> str:
    bq.write(pl.DataFrame({"id": [1, 2, 3], "name": ["ann", "bob", "cy"]}), f"{dataset}.people")
    return f"{dataset}.people"


def test_head_of_a_scan_is_a_table_read_not_a_query_job(
    bq: BigQueryConnector, people: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = JobSpy(bq, monkeypatch)
    assert bq.scan(people).head(2).collect().height == 2
    assert bq.scan(people).select("name").head(1).collect().columns == ["name"]
    assert bq.scan(people).collect().height == 3
    assert spy.job_ids == []  # no job, nothing billed
    filtered = bq.scan(people).filter(pl.col("id") >= 2).head(1).collect()  # a filter needs a job
    assert filtered.height == 1
    assert len(spy.job_ids) == 1


# -- 5. INT64 parameters; empty results keep their schema ------------------------------------


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"i": 2**70}, "parameter i = 1180591620717411303424"),
        ({"i": 2**63}, "parameter i = 9223372036854775808"),
        ([-(2**63) - 1], "parameter #1"),
        ({"ids": [1, 2**64]}, "parameter ids"),
    ],
)
def test_an_integer_outside_int64_is_a_configuration_error_before_any_job(
    bq: BigQueryConnector, monkeypatch: pytest.MonkeyPatch, params: Any, named: str
) -> None:
    spy = JobSpy(bq, monkeypatch)
    with pytest.raises(ConfigurationError, match=named) as info:
        bq.query("SELECT @i AS i" if isinstance(params, dict) else "SELECT ? AS i", params)
    assert "outside INT64 (-9223372036854775808 to 9223372036854775807)" in str(info.value)
    assert spy.job_ids == []


def test_int64_bounds_are_accepted(bq: BigQueryConnector) -> None:
    low, high = -(2**63), 2**63 - 1
    assert bq.query("SELECT @low AS low, @high AS high", {"low": low, "high": high}).to_pylist() == [
        {"low": low, "high": high}
    ]


EMPTY_SQL = "SELECT x, CAST(x AS STRING) AS s FROM UNNEST([1]) AS x WHERE FALSE"


def test_an_empty_query_result_keeps_its_schema(bq: BigQueryConnector) -> None:
    table = bq.query(EMPTY_SQL)
    assert table.num_rows == 0
    assert table.schema.names == ["x", "s"]
    batches = list(bq.stream(EMPTY_SQL))
    assert len(batches) == 1
    assert batches[0].num_rows == 0
    assert batches[0].schema.names == ["x", "s"]
    assert batches[0].schema.field("s").type == pa.string()


def test_an_empty_table_streams_one_empty_batch_with_its_schema(bq: BigQueryConnector, dataset: str) -> None:
    bq.query(f"CREATE TABLE `{dataset}.nothing` AS SELECT 1 AS id, 'a' AS name FROM UNNEST([1]) WHERE FALSE")
    batches = list(bq.stream(f"{dataset}.nothing"))  # the Storage Read path: no streams at all
    assert [(batch.num_rows, batch.schema.names) for batch in batches] == [(0, ["id", "name"])]
    assert bq.scan(f"{dataset}.nothing").collect().columns == ["id", "name"]


# -- 6. NaN in pushed comparisons ------------------------------------------------------------

VALUES = [math.nan, None, math.inf, -math.inf, 1.5, 0.0, -2.0, 3.0]
PREDICATES = {
    "gt": pl.col("f") > 1.0,
    "ge": pl.col("f") >= 0.0,
    "lt": pl.col("f") < 1.0,
    "le": pl.col("f") <= 1.5,
    "eq": pl.col("f") == 1.5,
    "ne": pl.col("f") != 1.5,
    "gt_int_literal": pl.col("f") > 1,
    "mirrored": 2.0 < pl.col("f"),  # noqa: SIM300 - the literal on the left on purpose
    "not_gt": ~(pl.col("f") > 1.0),
    "not_lt": ~(pl.col("f") < 1.0),
    "or": (pl.col("f") > 2.0) | (pl.col("id") == 1),
    "and": (pl.col("f") >= -2.0) & (pl.col("id") < 7),
    "is_in": pl.col("f").is_in([1.5, -2.0]),
    "is_in_nan": pl.col("f").is_in([1.5, math.nan]),
    "nan_literal": pl.col("f") > math.nan,
    "int_column": pl.col("id") > 3,
}


@pytest.fixture
def floats(bq: BigQueryConnector, dataset: str) -> tuple[str, pl.DataFrame]:
    frame = pl.DataFrame(
        {"id": list(range(len(VALUES))), "f": VALUES}, schema={"id": pl.Int64, "f": pl.Float64}
    )
    bq.write(frame, f"{dataset}.floats")
    return f"{dataset}.floats", frame


@pytest.mark.parametrize("name", sorted(PREDICATES))
def test_pushed_float_comparisons_keep_exactly_the_rows_polars_keeps(
    bq: BigQueryConnector, floats: tuple[str, pl.DataFrame], name: str
) -> None:
    table, frame = floats
    predicate = PREDICATES[name]
    expected = frame.filter(predicate).sort("id")
    assert bq.scan(table).filter(predicate).collect().sort("id").equals(expected)


def test_pushed_greater_than_on_a_float_column_also_asks_for_nan(
    bq: BigQueryConnector, floats: tuple[str, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    table, _ = floats
    spy = JobSpy(bq, monkeypatch)
    result = bq.scan(table).filter(pl.col("f") > 1.0).collect()
    assert sorted(result["id"].to_list()) == [0, 2, 4, 7]  # NaN, inf, 1.5, 3.0
    assert spy.sql[-1].endswith("WHERE (`f` > @p0 OR IS_NAN(`f`))")
    bq.scan(table).filter(pl.col("id") > 3).collect()
    assert spy.sql[-1].endswith("WHERE (`id` > @p0)")  # an INT64 column holds no NaN


@pytest.mark.parametrize(
    ("predicate", "sql"),
    [
        (pl.col("f") >= 1.0, "(`f` >= @p0 OR IS_NAN(`f`))"),
        (pl.col("f") < 1.0, "(`f` < @p0)"),
        (pl.col("f") != 1.0, "(`f` <> @p0)"),
        (~(pl.col("f") > 1.0), "(NOT (`f` > @p0 OR IS_NAN(`f`)))"),
        (pl.col("s") > "a", "(`s` > @p0)"),
    ],
)
def test_bigquery_nan_guards_in_translated_sql(predicate: pl.Expr, sql: str) -> None:
    schema = {"f": pl.Float64(), "s": pl.String()}
    assert translate_predicate(predicate, DIALECT, schema).sql == sql
    assert translate_predicate(pl.col("f").is_in([1.0, math.nan]), DIALECT, schema).sql is None
