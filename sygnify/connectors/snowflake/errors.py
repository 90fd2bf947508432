"""How snowflake-connector exceptions become :mod:`sygnify.errors` types (the SQL is never echoed).

A statement that ran past ``query_timeout`` (the client cancels it: errno 604) or past the
server's ``STATEMENT_TIMEOUT_IN_SECONDS`` (errno 630) is a ``StatementTimeoutError`` (an
``OperationTimeoutError`` that is never retried: a retry would run and bill it again):

    >>> from snowflake.connector.errors import ProgrammingError
    >>> timeout = ProgrammingError(msg="Statement reached its statement or warehouse timeout", errno=630)
    >>> type(translate_snowflake_error(timeout, "snowflake query failed", None)).__name__
    'StatementTimeoutError'

A network-level failure (``OperationalError``, ``InterfaceError``) means the connection is
broken: the pool closes it instead of handing it out again.

    >>> from snowflake.connector.errors import OperationalError
    >>> reset = OperationalError(msg="connection reset by peer")
    >>> is_connection_failure(reset), is_connection_failure(timeout)
    (True, False)
"""

from __future__ import annotations

import importlib
from typing import Any

import pyarrow as pa

from sygnify.errors import (
    AuthenticationError,
    ConnectionFailedError,
    NotFoundError,
    PermissionDeniedError,
    QueryError,
    SchemaError,
    StatementTimeoutError,
    SygnifyError,
    ThrottledError,
)

__all__ = ["PoolExhaustedError", "is_connection_failure", "translate_snowflake_error"]


class PoolExhaustedError(SygnifyError):
    """No pooled connection became free within ``checkout_timeout``.

    Not a :class:`~sygnify.errors.TransientError`, so the retry policy does not wait
    ``checkout_timeout`` again (and again): the connections are held by this process's own
    users, typically streams that were left open, and a retry would queue behind the same
    ones. Raise ``pool_size`` or ``checkout_timeout``, or close the streams you no longer read.
    """


# Snowflake error numbers (documented in the connector's errorcode module and server docs).
_AUTH_ERRNOS = {390100, 390101, 390102, 390104, 390144, 390318, 390303, 251005, 251006, 250006}
_NOT_FOUND_ERRNOS = {2003, 2043, 2140, 2151}
_TIMEOUT_ERRNOS = {604, 630, 250007, 251011, 253001}


def _errors() -> Any:
    return importlib.import_module("snowflake.connector.errors")


def is_connection_failure(exc: BaseException) -> bool:
    """Whether a snowflake-connector exception means the connection is broken (closed, not reused)."""
    errors = _errors()
    return isinstance(exc, errors.OperationalError | errors.InterfaceError)


def translate_snowflake_error(exc: Exception, context: str, resource: str | None) -> SygnifyError:
    """Map a snowflake-connector exception onto the sygnify error tree (the SQL is not echoed)."""
    errors = _errors()
    message = f"{context}: {getattr(exc, 'msg', None) or exc}"
    errno = getattr(exc, "errno", None)
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    if errno in _AUTH_ERRNOS or sqlstate == "28000":
        return AuthenticationError(message, resource=resource)
    timed_out = isinstance(exc, errors.OperationalError) and "timeout" in str(exc).lower()
    if errno in _TIMEOUT_ERRNOS or timed_out:
        return StatementTimeoutError(message, resource=resource)
    if isinstance(exc, errors.ForbiddenError) or errno == 3001:
        return PermissionDeniedError(message, resource=resource)
    if isinstance(exc, errors.TooManyRequests):
        return ThrottledError(message, resource=resource)
    if isinstance(
        exc, errors.ServiceUnavailableError | errors.GatewayTimeoutError | errors.InternalServerError
    ):
        return ConnectionFailedError(message, resource=resource)
    if errno in _NOT_FOUND_ERRNOS or sqlstate == "42S02":
        return NotFoundError(message, resource=resource)
    if isinstance(exc, errors.ProgrammingError):
        return QueryError(message, resource=resource)
    if isinstance(exc, errors.OperationalError | errors.InterfaceError | ConnectionError | OSError):
        return ConnectionFailedError(message, resource=resource)
    if isinstance(exc, errors.DatabaseError):
        return QueryError(message, resource=resource)
    if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError):
        return SchemaError(message, resource=resource)
    return SygnifyError(f"{message} ({type(exc).__name__})", resource=resource)
