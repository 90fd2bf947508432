"""Reading BigQuery rows as Arrow: query jobs, direct table reads, and the batches of either.

A query runs as one job that is waited for (and cancelled when it outlives its timeout); a
table is read directly, without a job, projected to the requested columns. Either result
then comes back batch by batch over the Storage Read API (gRPC) when it can read it, else
over the REST result pages. A job's options come from the connection's configuration:

    >>> from sygnify.connectors.bigquery.config import BigQueryConfig
    >>> config = BigQueryConfig(dataset="sales", labels={"team": "risk"}, anonymous=True)
    >>> job_config = query_job_config(config, "my-project", {"min": 10}, {"run": "nightly"})
    >>> str(job_config.default_dataset), job_config.labels, [p.name for p in job_config.query_parameters]
    ('my-project.sales', {'team': 'risk', 'run': 'nightly'}, ['min'])
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import requests
from google.api_core import exceptions as gexc
from google.cloud import bigquery

from sygnify.connectors.base import QueryParams
from sygnify.connectors.bigquery.config import NO_RETRY, BigQueryConfig
from sygnify.connectors.bigquery.types import query_parameters
from sygnify.errors import OperationTimeoutError, SchemaError

__all__ = ["STORAGE_FALLBACK", "arrow_batches", "open_table_rows", "query_job_config", "start_query"]

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


def start_query(
    client: bigquery.Client,
    config: BigQueryConfig,
    sql: str,
    params: QueryParams,
    labels: Mapping[str, str] | None,
    timeout: float | None,
) -> bigquery.table.RowIterator:
    """One attempt: run the job and wait for it; the rows are fetched by the caller."""
    job_config = query_job_config(config, str(client.project), params, labels)
    wait = timeout if timeout is not None else config.job_timeout
    try:
        job = client.query(sql, job_config=job_config, retry=NO_RETRY, job_retry=None, timeout=wait)
    except requests.Timeout:
        raise OperationTimeoutError(
            f"BigQuery query did not finish within {wait:g} s", resource=sql
        ) from None
    try:
        return job.result(timeout=wait, page_size=config.page_size, retry=NO_RETRY)
    except (concurrent.futures.TimeoutError, requests.Timeout):
        job.cancel(retry=NO_RETRY)
        raise OperationTimeoutError(
            f"BigQuery job {job.job_id} did not finish within {wait:g} s (cancelled)", resource=sql
        ) from None


def open_table_rows(
    client: bigquery.Client, table_id: str, columns: Sequence[str] | None, *, page_size: int
) -> bigquery.table.RowIterator:
    """The rows of table ``table_id`` (a full id), only ``columns`` when given; no query job runs."""
    table = client.get_table(table_id, retry=NO_RETRY)
    fields = None
    if columns:
        by_name = {field.name: field for field in table.schema}
        missing = [column for column in columns if column not in by_name]
        if missing:
            raise SchemaError(f"table {table_id} has no column(s) {', '.join(missing)}", resource=table_id)
        fields = [by_name[column] for column in columns]
    return client.list_rows(table, selected_fields=fields, page_size=page_size, retry=NO_RETRY)


def arrow_batches(rows: bigquery.table.RowIterator, storage: Any | None) -> Iterator[pa.RecordBatch]:
    """Batches of a result: Storage Read API first, REST pages if it cannot read this table.

    ``storage`` is the Storage Read API client, or ``None`` to read REST pages only. The
    fallback is decided on the first batch, so no batch is ever read twice.
    """
    if storage is not None:
        batches = rows.to_arrow_iterable(bqstorage_client=storage, max_queue_size=2)
        try:
            first = next(batches)
        except StopIteration:
            return
        except STORAGE_FALLBACK as exc:
            _log.debug("Storage Read API unavailable for this result (%s); using REST pages", exc)
        else:
            yield first
            yield from batches
            return
    yield from rows.to_arrow_iterable(bqstorage_client=None)
