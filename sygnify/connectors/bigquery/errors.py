"""How google-cloud / google-auth exceptions become :mod:`sygnify.errors` types for ``bigquery``.

Google Cloud's one error map (:func:`sygnify.clouds.gcp.translate_gcp_error`) does the work;
BigQuery adds what only it means: a rejected query, a job that ran out of time, rows Arrow
could not hold. Transient failures (timeouts, throttling, 5xx, dropped connections) become
the retried kinds; user errors (bad SQL, missing tables, rejected credentials) do not:

    >>> from google.api_core import exceptions as gexc
    >>> error = translate_bigquery_error(gexc.ServiceUnavailable("blip"), "bigquery query failed", None)
    >>> type(error).__name__, error.message
    ('TransientError', 'bigquery query failed: blip')
    >>> type(translate_bigquery_error(gexc.BadRequest("bad SQL"), "bigquery query failed", None)).__name__
    'QueryError'
    >>> type(translate_bigquery_error(gexc.NotFound("no table"), "bigquery query failed", "ds.t")).__name__
    'NotFoundError'
"""

from __future__ import annotations

import concurrent.futures

import pyarrow as pa
from google.api_core import exceptions as gexc

from sygnify.clouds.gcp import THROTTLE_REASONS, describe_gcp_error, error_reason, translate_gcp_error
from sygnify.errors import OperationTimeoutError, QueryError, SchemaError, SygnifyError

__all__ = ["is_job_timeout", "translate_bigquery_error"]


def _refine_bigquery(exc: BaseException, message: str, resource: str | None) -> SygnifyError | None:
    reason = error_reason(exc)
    if reason in THROTTLE_REASONS:
        return None  # Google Cloud's map makes it a ThrottledError, whatever the status
    if isinstance(exc, concurrent.futures.TimeoutError) or is_job_timeout(exc):
        return OperationTimeoutError(message, resource=resource)
    if isinstance(exc, gexc.BadRequest | gexc.InvalidArgument):
        return QueryError(message, resource=resource)
    if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError):
        return SchemaError(message, resource=resource)
    return None


def is_job_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` says a job ran out of time (its ``job_timeout_ms``), not that it failed.

    >>> from google.api_core import exceptions as gexc
    >>> is_job_timeout(gexc.BadRequest("Job timed out after 60 s", errors=[{"reason": "timeout"}]))
    True
    """
    return error_reason(exc) in ("timeout", "jobInternalError") and "timed out" in str(exc).lower()


def translate_bigquery_error(exc: Exception, context: str, resource: str | None) -> SygnifyError:
    """Map a google-cloud / google-auth exception onto the sygnify error tree."""
    message = f"{context}: {describe_gcp_error(exc)}"
    return translate_gcp_error(exc, message, resource, refine=_refine_bigquery) or SygnifyError(
        f"{message} ({type(exc).__name__})", resource=resource
    )
