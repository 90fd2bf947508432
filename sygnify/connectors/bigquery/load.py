"""Idempotent BigQuery load jobs: a retried ``write()`` never loads its rows twice.

Each ``write()`` fixes its load job's id before the first attempt
(:class:`~sygnify.connectors.bigquery.jobs.JobIds`), so a retry after an ambiguous failure
finds the job the first attempt started (409 Already Exists) and waits for it instead of
loading the rows again; a job found that way which failed or was cancelled loaded nothing
(load jobs are atomic), so the write moves on to its next id
(:func:`~sygnify.connectors.bigquery.jobs.submit_once`).
"""

from __future__ import annotations

import concurrent.futures
from typing import IO, Any

from google.cloud import bigquery

from sygnify.connectors.bigquery.config import NO_RETRY
from sygnify.connectors.bigquery.jobs import JobIds, submit_once
from sygnify.resilience import Deadline

__all__ = ["run_load_job"]


def _submit(
    client: bigquery.Client,
    source: IO[bytes],
    table_id: str,
    job_config: bigquery.LoadJobConfig,
    ids: JobIds,
) -> Any:
    """Start the load under ``ids.current``, or return the job an earlier attempt started under it."""

    def submit(job_id: str) -> Any:
        return client.load_table_from_file(
            source, table_id, job_id=job_id, job_config=job_config, rewind=True
        )

    return submit_once(submit, lambda job_id: client.get_job(job_id, retry=NO_RETRY), ids, resource=table_id)


def run_load_job(
    client: bigquery.Client,
    source: IO[bytes],
    table_id: str,
    job_config: bigquery.LoadJobConfig,
    ids: JobIds,
    *,
    deadline: Deadline | None,
) -> Any:
    """One attempt of a write: submit the load (or find the earlier attempt's job) and wait for it.

    Returns the finished job, or ``None`` when ``deadline`` passed first: the caller then
    cancels job ``ids.current`` (:func:`~sygnify.connectors.bigquery.jobs.cancel_timed_out`)
    and does not retry. A retry after any other failure finds the job by its id, so rows
    the job did load are never loaded again. Example (needs BigQuery or an emulator)::

        ids = JobIds.new()  # once per write, outside the retry loop
        job = resilience.call(run_load_job, client, parquet, "p.ds.t", job_config, ids, deadline=None)
    """
    if deadline is not None and deadline.expired:
        return None
    job = _submit(client, source, table_id, job_config, ids)
    try:
        job.result(timeout=None if deadline is None else deadline.remaining(), retry=NO_RETRY)
    except concurrent.futures.TimeoutError:
        return None
    return job
