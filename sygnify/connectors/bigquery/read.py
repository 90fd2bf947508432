"""Reading BigQuery rows as Arrow: query jobs, direct table reads, and the batches of either.

A query runs as one job under an id fixed before the first attempt, so a retry waits for
that job instead of running (and billing) it again; it is waited for until its deadline,
then cancelled. A table is read directly, without a job, projected to the requested
columns. Either result then comes back batch by batch over the Storage Read API (gRPC)
when it can read it, else over the REST result pages, in plain Arrow types. A job's
options come from the connection's configuration:

    >>> from sygnify.connectors.bigquery.config import BigQueryConfig
    >>> config = BigQueryConfig(dataset="sales", labels={"team": "risk"}, anonymous=True)
    >>> job_config = query_job_config(config, "my-project", {"min": 10}, {"run": "nightly"})
    >>> str(job_config.default_dataset), job_config.labels, [p.name for p in job_config.query_parameters]
    ('my-project.sales', {'team': 'risk', 'run': 'nightly'}, ['min'])
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import requests
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from sygnify.connectors.base import QueryParams
from sygnify.connectors.bigquery.config import NO_RETRY, BigQueryConfig
from sygnify.connectors.bigquery.errors import is_job_timeout
from sygnify.connectors.bigquery.jobs import JobIds, submit_once
from sygnify.connectors.bigquery.types import plain_arrow, query_parameters
from sygnify.errors import SchemaError
from sygnify.resilience import Deadline

__all__ = [
    "STORAGE_FALLBACK",
    "ResultRows",
    "arrow_batches",
    "job_rows",
    "query_job_config",
    "run_query",
    "table_rows",
]

_log = logging.getLogger(__name__)
#: Storage Read API failures after which reading falls back to REST pages.
STORAGE_FALLBACK = (gexc.NotFound, gexc.PermissionDenied, gexc.MethodNotImplemented, gexc.Unauthenticated)


def query_job_config(
    config: BigQueryConfig,
    project: str,
    params: QueryParams,
    labels: Mapping[str, str] | None,
    *,
    dry_run: bool = False,
) -> bigquery.QueryJobConfig:
    """The options of a query job in ``project``: typed parameters, labels, limits, default dataset."""
    job_config = bigquery.QueryJobConfig(
        query_parameters=query_parameters(params),
        labels={**config.labels, **(labels or {})},
        dry_run=dry_run,
        use_query_cache=not dry_run,
    )
    if config.dataset:
        job_config.default_dataset = f"{project}.{config.dataset}"
    if config.job_timeout is not None:
        job_config.job_timeout_ms = int(config.job_timeout * 1000)
    if config.maximum_bytes_billed is not None:
        job_config.maximum_bytes_billed = config.maximum_bytes_billed
    return job_config


def run_query(
    client: bigquery.Client,
    config: BigQueryConfig,
    sql: str,
    params: QueryParams,
    labels: Mapping[str, str] | None,
    ids: JobIds,
    deadline: Deadline | None,
) -> tuple[Any, bigquery.table.RowIterator | None]:
    """One attempt: start the job under ``ids`` (or find the one an earlier attempt started)
    and wait for it until ``deadline``.

    Returns the finished job and its rows, or ``(None, None)`` when the deadline passed
    first (or BigQuery stopped the job at its ``job_timeout``): the job (``ids.current``)
    may then still run, and the caller cancels it and must not retry.
    """
    job_config = query_job_config(config, str(client.project), params, labels)

    def submit(job_id: str) -> Any:
        return client.query(
            sql,
            job_config=job_config,
            job_id=job_id,
            retry=NO_RETRY,
            job_retry=None,
            timeout=None if deadline is None else deadline.remaining(),
        )

    def get_job(job_id: str) -> Any:
        return client.get_job(job_id, location=config.location, retry=NO_RETRY)

    if deadline is not None and deadline.expired:
        return None, None  # a retry after the deadline: only the cancel is left to do
    try:
        job = submit_once(submit, get_job, ids, resource=sql)
        rows = job.result(
            timeout=None if deadline is None else deadline.remaining(),
            page_size=config.page_size,
            retry=NO_RETRY,
        )
    except (concurrent.futures.TimeoutError, requests.Timeout):
        if deadline is None:
            raise
        return None, None
    except gexc.GoogleAPICallError as exc:
        if is_job_timeout(exc):  # BigQuery stopped it at job_timeout: a rerun would time out too
            return None, None
        raise
    return job, rows


class ResultRows:
    """The rows of a finished job or of a table, which may be read more than once.

    A ``RowIterator`` can be read only once, and a Storage Read attempt starts reading it
    even when it then fails, so the REST fallback (and a retried download) asks ``reopen``
    for a fresh one; ``first``, when given, is used before that (it may hold the first page).
    ``rest_only`` marks rows the Storage Read API cannot serve (a read with a row limit).
    """

    def __init__(
        self,
        reopen: Callable[[], bigquery.table.RowIterator],
        first: bigquery.table.RowIterator | None = None,
        *,
        rest_only: bool = False,
    ) -> None:
        self._reopen = reopen
        self._first = first
        self.rest_only = rest_only

    def open(self) -> bigquery.table.RowIterator:
        """An unread iterator over the rows."""
        first, self._first = self._first, None
        return first if first is not None else self._reopen()


def job_rows(job: Any, rows: bigquery.table.RowIterator, *, page_size: int) -> ResultRows:
    """The rows of ``job`` (finished), first read through ``rows``."""
    return ResultRows(lambda: job.result(page_size=page_size, retry=NO_RETRY), rows)


def table_rows(
    client: bigquery.Client,
    table_id: str,
    columns: Sequence[str] | None,
    *,
    page_size: int,
    max_results: int | None = None,
) -> ResultRows:
    """The rows of table ``table_id`` (a full id), only ``columns`` when given, at most
    ``max_results``; no query job runs (a table read is free)."""
    table = client.get_table(table_id, retry=NO_RETRY)
    fields = None
    if columns:
        by_name = {field.name: field for field in table.schema}
        missing = [column for column in columns if column not in by_name]
        if missing:
            raise SchemaError(f"table {table_id} has no column(s) {', '.join(missing)}", resource=table_id)
        fields = [by_name[column] for column in columns]
    return ResultRows(
        lambda: client.list_rows(
            table, selected_fields=fields, page_size=page_size, max_results=max_results, retry=NO_RETRY
        ),
        rest_only=max_results is not None,
    )


def arrow_batches(rows: ResultRows, storage: Any | None) -> Iterator[pa.RecordBatch]:
    """Batches of a result in plain Arrow types: Storage Read API first, REST pages if it cannot read it.

    ``storage`` is the Storage Read API client, or ``None`` to read REST pages only. The
    fallback is decided on the first batch, so no batch is ever read twice. A result with
    no rows still yields one empty batch, which carries its schema.
    """
    if storage is not None and not rows.rest_only:
        batches = rows.open().to_arrow_iterable(bqstorage_client=storage, max_queue_size=2)
        try:
            first = next(batches)
        except StopIteration:
            pass  # no rows: the REST page below carries the schema
        except STORAGE_FALLBACK as exc:
            _log.debug("Storage Read API unavailable for this result (%s); using REST pages", exc)
        else:
            yield plain_arrow(first)
            for batch in batches:
                yield plain_arrow(batch)
            return
    for batch in rows.open().to_arrow_iterable(bqstorage_client=None):
        yield plain_arrow(batch)
