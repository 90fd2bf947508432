"""Google BigQuery: parameterized SQL, Arrow results over the Storage Read API, loads and inserts.

Results come back as Arrow end to end: through the BigQuery Storage Read API (gRPC) when
it is available, else through the REST result pages, batch by batch, so a large result
never has to fit in memory. Values always travel as query parameters (``@name`` or ``?``),
never formatted into the SQL. Example (needs a BigQuery project or emulator)::

    from sygnify import CloudDataConnector

    with CloudDataConnector() as connector:
        bq = connector.connect("bigquery", project="my-project", dataset="sales",
                               credentials_file="key.json", labels={"team": "risk"})
        print(bq.estimate("SELECT * FROM orders WHERE amount > @min", {"min": 10}))  # bytes
        for batch in bq.stream("SELECT * FROM orders WHERE region = @r", params={"r": "eu"}):
            ...
        big = bq.scan("orders").filter(pl.col("amount") > 100).select("id").collect()
        bq.write(frame, "sales.orders_copy", mode="overwrite")
"""

from __future__ import annotations

import dataclasses
import io
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, NoReturn

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from sygnify.connectors._sql.batches import exact_batches
from sygnify.connectors._sql.scan import Pushdown, SqlDialect, scan_sql_table, select_sql
from sygnify.connectors.base import BaseConnector, Capability, QueryParams, WriteMode, WriteResult
from sygnify.connectors.bigquery.config import NO_RETRY, BigQueryClients, BigQueryConfig, open_clients
from sygnify.connectors.bigquery.errors import translate_bigquery_error
from sygnify.connectors.bigquery.jobs import JobIds, cancel_timed_out
from sygnify.connectors.bigquery.load import run_load_job
from sygnify.connectors.bigquery.read import (
    ResultRows,
    arrow_batches,
    job_rows,
    query_job_config,
    run_query,
    table_rows,
)
from sygnify.connectors.bigquery.types import arrow_to_bigquery_schema, plain_arrow, query_parameter
from sygnify.connectors.pool import ClientPool
from sygnify.errors import ConfigurationError, DataQualityError, SygnifyError
from sygnify.io.arrow import DEFAULT_BATCH_SIZE, to_arrow_table
from sygnify.io.sql import looks_like_sql
from sygnify.resilience import Deadline, Resilience

# The configuration, parameter typing and error translation live in private modules;
# their public names are re-exported here, where users import them from.
__all__ = [
    "DIALECT",
    "NO_RETRY",
    "BigQueryConfig",
    "BigQueryConnector",
    "arrow_to_bigquery_schema",
    "query_parameter",
    "translate_bigquery_error",
]

_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-:.]*$")
_DATASET = re.compile(r"^[A-Za-z0-9_]+$")
_TABLE = re.compile(r"^[A-Za-z0-9_\-$]+$")

DIALECT = SqlDialect(
    quote=lambda name: "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`",
    placeholder=lambda name, _index: f"@{name}",
    # BigQuery compares NaN the IEEE way (NaN > x is false); Polars ranks it above every number.
    is_nan=lambda column: f"IS_NAN({column})",
)


# -- the connector ------------------------------------------------------------------------


class BigQueryConnector(BaseConnector[BigQueryConfig]):
    """BigQuery tables and SQL as Arrow, with loads, streaming inserts and dry-run estimates."""

    type_name = "bigquery"
    capabilities = frozenset(
        {Capability.READABLE, Capability.QUERYABLE, Capability.WRITABLE, Capability.CATALOG}
    )
    config_model = BigQueryConfig

    def __init__(self, config: BigQueryConfig, *, name: str | None = None, pool: ClientPool | None = None):
        super().__init__(config, name=name, pool=pool)
        self._clients: BigQueryClients = self._call(
            "connect",
            lambda: self._shared(lambda: open_clients(config), BigQueryClients.close, exclude={"labels"}),
        )
        # For what must happen once (cancelling a timed-out job): one attempt, the same breaker.
        self._single_attempt = Resilience(
            retry=dataclasses.replace(self._resilience.retry, max_attempts=1), breaker=self.breaker
        )

    @property
    def client(self) -> bigquery.Client:
        """The underlying ``google.cloud.bigquery.Client`` (shared by connections of equal config)."""
        return self._clients.bigquery

    @property
    def project(self) -> str:
        return str(self.client.project)

    # -- names --------------------------------------------------------------------------

    def table_id(self, name: str) -> str:
        """``project.dataset.table`` for ``table``, ``dataset.table`` or a full id (backticks allowed)."""
        parts = name.strip().strip("`").split(".")
        if len(parts) == 1 and self.config.dataset:
            parts = [self.config.dataset, *parts]
        if len(parts) == 2:
            parts = [self.project, *parts]
        if len(parts) != 3:
            raise ConfigurationError(
                f"table {name!r} needs a dataset: write 'dataset.table' or set dataset= on the connection",
                resource=name,
            )
        project, dataset, table = parts
        if not (_PROJECT.match(project) and _DATASET.match(dataset) and _TABLE.match(table)):
            raise ConfigurationError(
                f"{name!r} is not a valid BigQuery table id (project.dataset.table, letters, digits, _)",
                resource=name,
            )
        return f"{project}.{dataset}.{table}"

    # -- reads --------------------------------------------------------------------------

    def _start_query(
        self, sql: str, params: QueryParams, labels: Mapping[str, str] | None, timeout: float | None
    ) -> ResultRows:
        """Run ``sql`` as one job and wait for it; its rows.

        The job's id is fixed before the first attempt, so a retry (after a lost answer or a
        5xx) waits for the same job instead of running it again. ``timeout`` (else the
        configured ``job_timeout``) is one deadline for all attempts: when it passes, the job
        is cancelled and :class:`~sygnify.errors.OperationTimeoutError` raised, without retry.
        """
        wait = timeout if timeout is not None else self.config.job_timeout
        deadline = Deadline(wait) if wait is not None else None
        ids = JobIds.new("query")  # one id for every attempt of this query
        job, rows = self._call(
            "query", run_query, self.client, self.config, sql, params, labels, ids, deadline, resource=sql
        )
        if rows is None:
            assert wait is not None  # only a deadline ends an attempt without rows
            self._cancel_timed_out(ids.current, wait, "query", sql)
        return job_rows(job, rows, page_size=self.config.page_size)

    def _cancel_timed_out(self, job_id: str, timeout: float, operation: str, resource: str) -> NoReturn:
        # Once, outside the retries: a timeout is the caller's limit, not a failure to retry.
        self._call(
            operation,
            cancel_timed_out,
            self.client,
            job_id,
            self.config.location,
            timeout,
            resource,
            resource=resource,
            resilience=self._single_attempt,
        )
        raise AssertionError("unreachable: cancel_timed_out always raises")  # pragma: no cover

    def _table_rows(
        self, source: str, columns: Sequence[str] | None, max_results: int | None = None
    ) -> ResultRows:
        table_id = self.table_id(source)
        return self._call(
            "open table",
            table_rows,
            self.client,
            table_id,
            columns,
            page_size=self.config.page_size,
            max_results=max_results,
            resource=table_id,
        )

    def _batches(self, rows: ResultRows, batch_size: int, source: str) -> Iterator[pa.RecordBatch]:
        batches = arrow_batches(rows, self._clients.storage)
        yield from self._translate_stream(exact_batches(batches, batch_size), source)

    # -- protocol -----------------------------------------------------------------------

    def query(
        self,
        sql: str,
        params: QueryParams = None,
        *,
        labels: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> pa.Table:
        """Run GoogleSQL with ``@name`` (mapping) or ``?`` (sequence) parameters; the whole result.

        ``timeout`` (seconds) bounds the wait for the job, which is cancelled on timeout and
        never submitted again; a retried failure waits for the same job (one job, one bill).
        An empty result is an empty table with the result's schema.
        """
        rows = self._start_query(sql, params, labels, timeout)

        def fetch() -> pa.Table:
            # A retry reads the finished job's result again from its start (nothing is re-run).
            return pa.Table.from_batches(list(arrow_batches(rows, self._clients.storage)))

        return self._call("query", fetch, resource=sql)

    def stream(
        self,
        source: str,
        *,
        params: QueryParams = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: Sequence[str] | None = None,
        labels: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield a query's result (``source`` is SQL) or a table's rows in ``batch_size``-row batches.

        A table is read directly with the Storage Read API (no query cost), projected to
        ``columns``. An empty result yields one empty batch, which carries its schema.
        """
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
        if looks_like_sql(source):
            if columns:
                raise ConfigurationError("columns applies to table sources; select them in the SQL")
            rows = self._start_query(source, params, labels, timeout)
        else:
            if params:
                raise ConfigurationError("params apply to SQL sources only", resource=source)
            rows = self._table_rows(source, columns)
        yield from self._batches(rows, batch_size, source)

    def scan(self, source: str, *, batch_size: int = DEFAULT_BATCH_SIZE, **options: Any) -> pl.LazyFrame:
        """A LazyFrame over a table; selected columns and simple filters run inside BigQuery.

        Without a filter the table is read directly (Storage Read API, or REST pages for a
        ``head(n)``), which runs no job and bills nothing; with one, a parameterized
        ``SELECT ... WHERE`` job runs. The filter is re-applied in Polars. DATETIME columns
        are Polars datetimes without a time zone, JSON and GEOGRAPHY strings.
        """
        if options:
            raise ConfigurationError(f"unknown scan options: {', '.join(sorted(options))}", resource=source)
        table_id = self.table_id(source)
        empty = self._call(
            "scan",
            lambda: self.client.list_rows(table_id, max_results=0, retry=NO_RETRY).to_arrow(
                create_bqstorage_client=False
            ),
            resource=table_id,
        )
        frame = pl.from_arrow(plain_arrow(empty))
        assert isinstance(frame, pl.DataFrame)

        def fetch(
            columns: list[str] | None, pushdown: Pushdown, limit: int | None, size: int
        ) -> Iterator[pa.RecordBatch]:
            if pushdown.sql is None:
                # No filter to run: a table read (free), with the row limit when there is one.
                return self._batches(self._table_rows(table_id, columns, limit), size, table_id)
            sql = select_sql(f"`{table_id}`", columns, pushdown, limit, DIALECT)
            params = {param.name: param.value for param in pushdown.params}
            return self.stream(sql, params=params, batch_size=size)

        return scan_sql_table(
            frame.schema, fetch, DIALECT, batch_size=batch_size, name=f"bigquery:{table_id}"
        )

    def estimate(self, sql: str, params: QueryParams = None) -> int:
        """Bytes the query would process (a dry run: free, and it validates the SQL)."""
        job_config = query_job_config(self.config, self.project, params, None, dry_run=True)

        def dry_run() -> int:
            job = self.client.query(sql, job_config=job_config, retry=NO_RETRY, job_retry=None)
            return int(job.total_bytes_processed or 0)

        return self._call("dry run", dry_run, resource=sql)

    def write(
        self,
        data: Any,
        target: str,
        *,
        mode: WriteMode = "append",
        method: Literal["load", "insert_all"] = "load",
        labels: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Write Arrow/Polars/pandas data to a table, creating it from the data's schema if absent.

        ``method="load"`` runs a Parquet load job (atomic, free); ``"insert_all"`` uses
        streaming inserts (``insertAll``, rows visible at once, billed). ``overwrite``
        replaces the table's rows.

        Retries never duplicate rows: the load job's id is fixed for the whole write, so a
        retry after an ambiguous failure finds the job the first attempt started (409
        Already Exists) and waits for it instead of loading again; ``insert_all`` sends the
        same ``insertId`` for a row on every attempt.
        """
        if mode not in ("append", "overwrite"):
            raise ConfigurationError(f"mode must be 'append' or 'overwrite', got {mode!r}", resource=target)
        if method not in ("load", "insert_all"):
            raise ConfigurationError(
                f"method must be 'load' or 'insert_all', got {method!r}", resource=target
            )
        table = to_arrow_table(data)
        table_id = self.table_id(target)
        schema = arrow_to_bigquery_schema(table.schema)
        exists = self._call("get table", self._table_exists, table_id, resource=table_id)
        if not exists:
            # exists_ok: a retry after a create whose answer was lost must not fail.
            self._call(
                "create table",
                self.client.create_table,
                bigquery.Table(table_id, schema=schema),
                exists_ok=True,
                retry=NO_RETRY,
                resource=table_id,
            )
        if method == "load":
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            job_config = self._load_config(mode, labels)
            ids = JobIds.new()  # one id for every attempt of this write
            timeout = self.config.job_timeout
            job = self._call(
                "load",
                run_load_job,
                self.client,
                buffer,
                table_id,
                job_config,
                ids,
                deadline=Deadline(timeout) if timeout is not None else None,
                resource=table_id,
            )
            if job is None:
                assert timeout is not None  # only a deadline ends an attempt without a job
                self._cancel_timed_out(ids.current, timeout, "load", table_id)
            rows = int(job.output_rows or table.num_rows)
        else:
            if mode == "overwrite" and exists:
                self._call("truncate", self._recreate, table_id, schema, resource=table_id)
            rows = self._insert_all(table, table_id, schema)
        return WriteResult(target=target, rows=rows, paths=[table_id.split(".", 1)[1]])

    def _table_exists(self, table_id: str) -> bool:
        try:
            self.client.get_table(table_id, retry=NO_RETRY)
        except gexc.NotFound:
            return False
        return True

    def _recreate(self, table_id: str, fallback: list[bigquery.SchemaField]) -> None:
        # Streaming-buffer rows block DML, so overwrite-by-insert re-creates the table. Each
        # step tolerates a retry after an earlier attempt got part of the way.
        try:
            schema = self.client.get_table(table_id, retry=NO_RETRY).schema
        except gexc.NotFound:
            schema = fallback
        self.client.delete_table(table_id, not_found_ok=True, retry=NO_RETRY)
        self.client.create_table(bigquery.Table(table_id, schema=schema), exists_ok=True, retry=NO_RETRY)

    def _load_config(self, mode: WriteMode, labels: Mapping[str, str] | None) -> bigquery.LoadJobConfig:
        job_config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition="WRITE_TRUNCATE" if mode == "overwrite" else "WRITE_APPEND",
            labels={**self.config.labels, **(labels or {})},
        )
        if self.config.job_timeout is not None:
            job_config.job_timeout_ms = int(self.config.job_timeout * 1000)
        return job_config

    def _insert_all(self, table: pa.Table, table_id: str, schema: list[bigquery.SchemaField]) -> int:
        written = 0
        for batch in table.to_batches(max_chunksize=self.config.insert_chunk_rows):
            rows = batch.to_pylist()
            row_ids = [uuid.uuid4().hex for _ in rows]  # insertId: best-effort de-duplication on retry
            errors = self._call(
                "insert",
                self.client.insert_rows,
                table_id,
                rows,
                selected_fields=schema,
                row_ids=row_ids,
                retry=NO_RETRY,
                resource=table_id,
            )
            if errors:
                described = "; ".join(
                    f"row {written + int(error.get('index', -1))}: "
                    + ", ".join(str(e.get("message", e.get("reason"))) for e in error.get("errors", []))
                    for error in errors[:3]
                )
                raise DataQualityError(
                    f"{len(errors)} row(s) rejected by insertAll into {table_id} "
                    f"({written} rows before this request were written): {described}",
                    resource=table_id,
                )
            written += len(rows)
        return written

    def datasets(self) -> list[str]:
        """Dataset ids of the project, sorted."""
        return self._call(
            "list datasets", lambda: sorted(d.dataset_id for d in self.client.list_datasets(retry=NO_RETRY))
        )

    def list(self, prefix: str = "") -> list[str]:
        """Tables as ``dataset.table`` whose name starts with ``prefix`` (e.g. ``"sales."``)."""

        def list_tables() -> list[str]:
            names: list[str] = []
            for dataset in self.client.list_datasets(retry=NO_RETRY):
                dataset_id = dataset.dataset_id
                if not (dataset_id.startswith(prefix) or prefix.startswith(f"{dataset_id}.")):
                    continue
                for table in self.client.list_tables(dataset_id, retry=NO_RETRY):
                    full = f"{dataset_id}.{table.table_id}"
                    if full.startswith(prefix):
                        names.append(full)
            return sorted(names)

        return self._call("list", list_tables, resource=prefix or None)

    def _check_health(self) -> str:
        list(self.client.list_datasets(max_results=1, retry=NO_RETRY))
        return f"project {self.project}"

    # -- errors ---------------------------------------------------------------------------

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        return translate_bigquery_error(exc, f"bigquery {operation} failed", resource)
