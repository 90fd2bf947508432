"""Idempotent BigQuery load jobs: a retried ``write()`` never loads its rows twice.

Each ``write()`` fixes its load job's id before the first attempt (:class:`LoadJobIds`).
When an attempt fails ambiguously (the upload reached BigQuery but the answer was lost),
the retry submits the *same* id: BigQuery answers 409 Already Exists, which means the first
attempt did create the job, so that job is waited for instead of loading the rows again. A
job found that way which failed or was cancelled loaded nothing (load jobs are atomic), so
the write moves on to its next id (``<id>_2``, ``<id>_3``, ...) and submits afresh:

    >>> ids = LoadJobIds("sygnify_load_abc")
    >>> ids.current, ids.advance(), ids.current
    ('sygnify_load_abc', 'sygnify_load_abc_2', 'sygnify_load_abc_2')
"""

from __future__ import annotations

import concurrent.futures
import logging
import uuid
from dataclasses import dataclass
from typing import IO, Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from sygnify.connectors.bigquery.config import NO_RETRY
from sygnify.errors import JobFailedError, OperationTimeoutError

__all__ = ["LoadJobIds", "run_load_job"]

_log = logging.getLogger(__name__)
#: Ids a single attempt may move past (each one is an earlier attempt's failed job).
_MAX_GENERATIONS = 16


@dataclass
class LoadJobIds:
    """The job ids of one write: ``base`` first, then ``base_2``... after a job that loaded nothing."""

    base: str
    generation: int = 1

    @classmethod
    def new(cls) -> LoadJobIds:
        """Fresh ids for a new write (a random base, so two writes never share a job)."""
        return cls(f"sygnify_load_{uuid.uuid4().hex}")

    @property
    def current(self) -> str:
        """The id the next submission uses."""
        return self.base if self.generation == 1 else f"{self.base}_{self.generation}"

    def advance(self) -> str:
        """Move to the next id (the current one belongs to a job that loaded nothing)."""
        self.generation += 1
        return self.current


def _submit(
    client: bigquery.Client,
    source: IO[bytes],
    table_id: str,
    job_config: bigquery.LoadJobConfig,
    ids: LoadJobIds,
) -> Any:
    """Start the load under ``ids.current``, or return the job an earlier attempt started under it."""
    for _ in range(_MAX_GENERATIONS):
        job_id = ids.current
        try:
            return client.load_table_from_file(
                source, table_id, job_id=job_id, job_config=job_config, rewind=True
            )
        except gexc.Conflict:
            # 409: an earlier attempt's request did reach BigQuery; that job owns these rows.
            existing = client.get_job(job_id, retry=NO_RETRY)
            if existing.state != "DONE" or existing.error_result is None:
                _log.info("load job %s already exists (an earlier attempt); waiting for it", job_id)
                return existing
            _log.info(
                "load job %s exists but loaded nothing (%s); submitting anew", job_id, existing.error_result
            )
            ids.advance()
    raise JobFailedError(
        f"could not start a load job into {table_id}: job ids {ids.base} to {ids.current} all exist "
        "and failed; look at them in the BigQuery console",
        resource=table_id,
    )


def run_load_job(
    client: bigquery.Client,
    source: IO[bytes],
    table_id: str,
    job_config: bigquery.LoadJobConfig,
    ids: LoadJobIds,
    *,
    timeout: float | None,
) -> Any:
    """One attempt of a write: submit the load (or find the earlier attempt's job) and wait for it.

    On timeout the job is cancelled and :class:`~sygnify.errors.OperationTimeoutError` raised;
    a retry then finds the job by its id, so rows the job did load are never loaded again.
    Example (needs BigQuery or an emulator)::

        ids = LoadJobIds.new()  # once per write, outside the retry loop
        job = resilience.call(run_load_job, client, parquet, "p.ds.t", job_config, ids, timeout=300)
    """
    job = _submit(client, source, table_id, job_config, ids)
    try:
        job.result(timeout=timeout, retry=NO_RETRY)
    except concurrent.futures.TimeoutError:
        job.cancel(retry=NO_RETRY)
        raise OperationTimeoutError(
            f"load job {job.job_id} into {table_id} did not finish within {timeout:g} s",
            resource=table_id,
        ) from None
    return job
