"""BigQuery jobs that a retry never submits twice: one fixed job id per call.

A call (a ``query()``, a ``write()``) fixes its job's id before the first attempt
(:class:`JobIds`). When an attempt fails ambiguously (the request reached BigQuery but the
answer was lost), the retry submits the *same* id: BigQuery answers 409 Already Exists,
which means the earlier attempt did create the job, so that job is waited for instead of
being run (and billed) again. A job found that way which failed or was cancelled did
nothing, so the call moves on to its next id (``<id>_2``, ``<id>_3``, ...) and submits
afresh. A job that outlives the call's timeout is cancelled and the call fails with
:class:`~sygnify.errors.OperationTimeoutError`, never retried (:func:`cancel_timed_out`):

    >>> ids = JobIds("sygnify_query_abc")
    >>> ids.current, ids.advance(), ids.current
    ('sygnify_query_abc', 'sygnify_query_abc_2', 'sygnify_query_abc_2')
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from sygnify.connectors.bigquery.config import NO_RETRY
from sygnify.errors import JobFailedError, OperationTimeoutError

__all__ = ["JobIds", "cancel_timed_out", "submit_once"]

_log = logging.getLogger(__name__)
#: Ids a single attempt may move past (each one is an earlier attempt's failed job).
_MAX_GENERATIONS = 16

Job = TypeVar("Job")


@dataclass
class JobIds:
    """The job ids of one call: ``base`` first, then ``base_2``... after a job that did nothing."""

    base: str
    generation: int = 1

    @classmethod
    def new(cls, kind: str = "load") -> JobIds:
        """Fresh ids for a new call (a random base, so two calls never share a job).

        >>> JobIds.new("query").base.startswith("sygnify_query_")
        True
        """
        return cls(f"sygnify_{kind}_{uuid.uuid4().hex}")

    @property
    def current(self) -> str:
        """The id the next submission uses."""
        return self.base if self.generation == 1 else f"{self.base}_{self.generation}"

    def advance(self) -> str:
        """Move to the next id (the current one belongs to a job that did nothing)."""
        self.generation += 1
        return self.current


def submit_once(
    submit: Callable[[str], Job], get_job: Callable[[str], Any], ids: JobIds, *, resource: str
) -> Job:
    """``submit(ids.current)``, or the job an earlier attempt started under that id.

    ``get_job(job_id)`` fetches an existing job (on 409 Already Exists); a job that ended
    with an error is passed over for the next id.
    """
    for _ in range(_MAX_GENERATIONS):
        job_id = ids.current
        try:
            return submit(job_id)
        except gexc.Conflict:
            existing = get_job(job_id)
            if existing.state != "DONE" or existing.error_result is None:
                _log.info("job %s already exists (an earlier attempt); waiting for it", job_id)
                return existing  # type: ignore[no-any-return]
            _log.info("job %s exists but failed (%s); submitting anew", job_id, existing.error_result)
            ids.advance()
    raise JobFailedError(
        f"could not start a job for {resource}: job ids {ids.base} to {ids.current} all exist "
        "and failed; look at them in the BigQuery console",
        resource=resource,
    )


def cancel_timed_out(
    client: bigquery.Client, job_id: str, location: str | None, timeout: float, resource: str
) -> NoReturn:
    """Cancel job ``job_id``, which outlived ``timeout``, and raise :class:`OperationTimeoutError`.

    The job may not exist (its submission was cut short): there is then nothing to cancel.
    """
    with contextlib.suppress(gexc.NotFound):
        client.cancel_job(job_id, location=location, retry=NO_RETRY)
    raise OperationTimeoutError(
        f"BigQuery job {job_id} did not finish within {timeout:g} s; it was cancelled "
        "(pass a larger timeout= or job_timeout= to wait longer)",
        resource=resource,
    )
