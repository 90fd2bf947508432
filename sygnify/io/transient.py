"""What the text of a failed read says about a transient store failure (one list for every reader).

pyarrow, Polars and DuckDB report store failures as plain exceptions (and DuckDB only as
text, even when the failure was a sygnify error raised inside the SDK filesystem it read
through), so a throttled or dropped request is told apart by its words, before the same
text could be mistaken for bad data.
"""

from __future__ import annotations

from sygnify.errors import (
    CircuitOpenError,
    ConnectionFailedError,
    SygnifyError,
    ThrottledError,
    TransientError,
)

__all__ = ["transient_read_error"]

#: What pyarrow (AWS SDK error names), Polars (object_store) and the SDK filesystem (sygnify's
#: own error names, carried through pyarrow and DuckDB as text) say about a throttled store.
_THROTTLED_WORDS = (
    "SLOW_DOWN",
    "SLOWDOWN",
    "SERVERBUSY",
    "SERVER_BUSY",
    "THROTTL",
    "SERVICE_UNAVAILABLE",
    "SERVICE UNAVAILABLE",
    "HTTP STATUS 503",
    "503 SERVICE",
    "STATUS: 503",
    "TOO MANY REQUESTS",
)
#: ... about a dropped or failed connection, a timeout or a server error.
_CONNECTION_WORDS = (
    "NETWORK_CONNECTION",
    "CONNECTION RESET",
    "CONNECTION REFUSED",
    "CONNECTION ABORTED",
    "CONNECTION CLOSED",
    "BROKEN PIPE",
    "TIMED OUT",
    "TIMEOUT WAS REACHED",
    "INTERNAL_FAILURE",
    "HTTP STATUS 5",
    "STATUS: 5",
    "CURL ERROR",
    "CONNECTIONFAILEDERROR",
    "OPERATIONTIMEOUTERROR",
)


def transient_read_error(text: str, message: str, resource: str | None) -> SygnifyError | None:
    """The transient (or circuit-open) error that a read failure's ``text`` names, else ``None``.

    >>> type(transient_read_error("AWS Error SERVICE_UNAVAILABLE during GetObject", "read", None)).__name__
    'ThrottledError'
    >>> transient_read_error("Parquet magic bytes not found", "read", None) is None
    True
    """
    upper = text.upper()
    if "CIRCUITOPENERROR" in upper or ("CIRCUIT BREAKER" in upper and "IS OPEN" in upper):
        return CircuitOpenError(message, resource=resource, retry_at=0.0)
    if any(word in upper for word in _THROTTLED_WORDS) or "THROTTLEDERROR" in upper:
        return ThrottledError(message, resource=resource)
    if any(word in upper for word in _CONNECTION_WORDS):
        return ConnectionFailedError(message, resource=resource)
    if "TRANSIENTERROR" in upper:
        return TransientError(message, resource=resource)
    return None
