"""How PostgreSQL (ADBC driver) exceptions become :mod:`sygnify.errors` types.

The server's SQLSTATE decides, class by class; errors raised before a session exists
(connecting, logging in) carry no SQLSTATE, so libpq's message decides those. The SQL
text the driver appends ("Query was: ...") is dropped: an error never echoes the query.

    >>> type(translate_postgres_error(OSError("x. SQLSTATE: 42P01"), "postgres query failed", "t")).__name__
    'NotFoundError'
    >>> cancelled = OSError("canceling statement. SQLSTATE: 57014")
    >>> error = translate_postgres_error(cancelled, "query failed", None)
    >>> type(error).__name__, error.message  # doctest: +NORMALIZE_WHITESPACE
    ('StatementTimeoutError',
     'query failed: canceling statement (SQLSTATE 57014); raise statement_timeout or make the query cheaper')
"""

from __future__ import annotations

import re

import adbc_driver_manager
import pyarrow as pa

from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    DataQualityError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    QueryError,
    SchemaError,
    StatementTimeoutError,
    SygnifyError,
    ThrottledError,
    TransientError,
)

__all__ = ["is_connection_failure", "sqlstate_of", "translate_postgres_error"]

_SQLSTATE = re.compile(r"[.\s]*SQLSTATE: ([0-9A-Z]{5})\s*$")
_QUERY_WAS = re.compile(r"\s*Query was: .*", re.S)

#: Exact SQLSTATEs first, then two-character classes: (error type, what to do).
_BY_STATE: dict[str, tuple[type[SygnifyError], str]] = {
    "3D000": (NotFoundError, "check dbname"),
    "42P01": (NotFoundError, "check the table name and its schema (search_path)"),
    "3F000": (NotFoundError, "check the schema name"),
    "42501": (PermissionDeniedError, "GRANT the privilege to this role, or connect as another"),
    "57014": (StatementTimeoutError, "raise statement_timeout or make the query cheaper"),
    "55P03": (OperationTimeoutError, "another transaction holds the lock; retry later"),
    "40001": (TransientError, "a serialization failure: retry the transaction"),
    "40P01": (TransientError, "a deadlock: retry the transaction"),
    "53300": (ThrottledError, "too many connections: lower pool_size or raise max_connections"),
    "57P01": (ConnectionFailedError, "the server is shutting down"),
    "57P02": (ConnectionFailedError, "the server is restarting"),
    "57P03": (ConnectionFailedError, "the server is starting up; retry shortly"),
}
_BY_CLASS: dict[str, tuple[type[SygnifyError], str]] = {
    "28": (AuthenticationError, "check user and password, and pg_hba.conf on the server"),
    "08": (ConnectionFailedError, "check the server is up and reachable"),
    "53": (TransientError, "the server is out of resources; retry later"),
    "22": (DataQualityError, "a value does not fit its column or operation"),
    "23": (DataQualityError, "a constraint rejected the data"),
    "42": (QueryError, "fix the SQL"),
}
#: Connect-time libpq messages (no SQLSTATE yet), most specific first.
_CONNECT_MESSAGES: list[tuple[re.Pattern[str], type[SygnifyError], str]] = [
    (re.compile(r'database ".*" does not exist'), NotFoundError, "check dbname"),
    (
        re.compile(
            r"password authentication failed|no pg_hba\.conf entry|role \".*\" does not exist|"
            r"is not permitted to log in|no password supplied|authentication failed"
        ),
        AuthenticationError,
        "check user and password, and pg_hba.conf on the server",
    ),
    (
        re.compile(r"SSL|certificate|sslmode", re.I),
        ConfigurationError,
        "check sslmode and sslrootcert (use sslmode='require' to encrypt without verifying)",
    ),
    (
        re.compile(r"invalid percent-encoded token|invalid URI|invalid connection option|missing \"=\""),
        ConfigurationError,
        "check url (percent-encode special characters in the user and password) and the options",
    ),
    (
        re.compile(r"too many (clients|connections)"),
        ThrottledError,
        "lower pool_size or raise max_connections",
    ),
]


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver exception: its ``sqlstate`` attribute, else the one in its message."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and len(state) == 5:
        return state
    match = _SQLSTATE.search(_QUERY_WAS.sub("", str(exc)))
    return match.group(1) if match else None


def _message(exc: BaseException) -> str:
    """The server's own message: no driver prefixes, no echoed SQL, no LINE/caret context."""
    text = _SQLSTATE.sub("", _QUERY_WAS.sub("", str(exc)).strip()).strip()
    text = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", text)
    server = text.rsplit("ERROR:  ", 1)
    if len(server) == 2:
        text = server[1]
    return text.split("\nLINE ", 1)[0].strip()


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection is broken (closed, not reused)."""
    state = sqlstate_of(exc) or ""
    if state.startswith("08") or state.startswith("57P"):
        return True
    return (
        isinstance(exc, adbc_driver_manager.OperationalError | adbc_driver_manager.InterfaceError | OSError)
        and not state
    )


def translate_postgres_error(exc: BaseException, context: str, resource: str | None) -> SygnifyError:
    """Map a PostgreSQL driver exception onto the sygnify error tree (the SQL is not echoed)."""
    state = sqlstate_of(exc)
    detail = _message(exc)
    if state is not None:
        unknown = (SygnifyError, "") if state.startswith("XX") else (QueryError, "")
        kind, hint = _BY_STATE.get(state) or _BY_CLASS.get(state[:2]) or unknown
        text = f"{context}: {detail} (SQLSTATE {state})" + (f"; {hint}" if hint else "")
        return kind(text, resource=resource)
    for pattern, kind, hint in _CONNECT_MESSAGES:
        if pattern.search(detail):
            return kind(f"{context}: {detail}; {hint}", resource=resource)
    if isinstance(exc, adbc_driver_manager.OperationalError | adbc_driver_manager.InterfaceError | OSError):
        return ConnectionFailedError(
            f"{context}: {detail}; check the server is up and reachable", resource=resource
        )
    if isinstance(exc, adbc_driver_manager.DataError | adbc_driver_manager.IntegrityError):
        return DataQualityError(f"{context}: {detail}", resource=resource)
    if isinstance(exc, adbc_driver_manager.ProgrammingError | adbc_driver_manager.NotSupportedError):
        return QueryError(f"{context}: {detail}", resource=resource)
    if isinstance(exc, pa.ArrowInvalid | pa.ArrowTypeError | pa.ArrowNotImplementedError):
        return SchemaError(f"{context}: {detail}", resource=resource)
    return SygnifyError(f"{context}: {detail} ({type(exc).__name__})", resource=resource)
