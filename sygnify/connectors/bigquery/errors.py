"""How google-cloud / google-auth exceptions become :mod:`sygnify.errors` types.

Transient failures (timeouts, throttling, 5xx, dropped connections) become the retried
kinds; user errors (bad SQL, missing tables, rejected credentials) do not:

    >>> from google.api_core import exceptions as gexc
    >>> error = translate_bigquery_error(gexc.ServiceUnavailable("blip"), "bigquery query failed", None)
    >>> type(error).__name__, error.message
    ('ConnectionFailedError', 'bigquery query failed: blip')
    >>> type(translate_bigquery_error(gexc.NotFound("no table"), "bigquery query failed", "ds.t")).__name__
    'NotFoundError'
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping

import pyarrow as pa
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from sygnify.errors import (
    AuthenticationError,
    ConnectionFailedError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    QueryError,
    SchemaError,
    SygnifyError,
    ThrottledError,
)

__all__ = ["translate_bigquery_error"]


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    return str(first.get("reason", ""))


def translate_bigquery_error(exc: Exception, context: str, resource: str | None) -> SygnifyError:
    """Map a google-cloud / google-auth exception onto the sygnify error tree."""
    message = f"{context}: {getattr(exc, 'message', None) or exc}"
    reason = _reason(exc)
    if isinstance(exc, concurrent.futures.TimeoutError | gexc.DeadlineExceeded | requests.Timeout) or (
        reason in ("timeout", "jobInternalError") and "timed out" in str(exc).lower()
    ):
        return OperationTimeoutError(message, resource=resource)
    if isinstance(
        exc,
        auth_exc.RefreshError | auth_exc.DefaultCredentialsError | gexc.Unauthorized | gexc.Unauthenticated,
    ):
        return AuthenticationError(
            f"{context}: credentials were rejected or could not be refreshed ({type(exc).__name__})",
            resource=resource,
        )
    if isinstance(exc, gexc.TooManyRequests | gexc.ResourceExhausted) or reason in (
        "rateLimitExceeded",
        "quotaExceeded",
        "backendError",
    ):
        return ThrottledError(message, resource=resource)
    if isinstance(exc, gexc.Forbidden | gexc.PermissionDenied):
        return PermissionDeniedError(message, resource=resource)
    if isinstance(exc, gexc.NotFound):
        return NotFoundError(message, resource=resource)
    if isinstance(exc, gexc.BadRequest | gexc.InvalidArgument):
        return QueryError(message, resource=resource)
    if isinstance(
        exc,
        gexc.ServerError
        | gexc.ServiceUnavailable
        | gexc.RetryError
        | auth_exc.TransportError
        | requests.ConnectionError
        | ConnectionError,
    ):
        return ConnectionFailedError(message, resource=resource)
    if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError):
        return SchemaError(message, resource=resource)
    return SygnifyError(f"{message} ({type(exc).__name__})", resource=resource)
