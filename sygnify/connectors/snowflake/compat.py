"""Names the ``snowflake`` connector exported before it moved onto the shared SQL layer.

They work for one more release, with a ``DeprecationWarning``: the connector now binds
parameters with the shared ``bind_params`` and draws its connections from the shared
``ConnectionPool`` (``connection.pool``).

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     named_to_qmark("SELECT * FROM t WHERE a = :a OR b = :a", {"a": 1})
    ('SELECT * FROM t WHERE a = ? OR b = ?', [1, 1])
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from sygnify.connectors._sql.params import bind_params
from sygnify.connectors._sql.pool import ConnectionPool
from sygnify.connectors.snowflake.errors import is_connection_failure

__all__ = ["SnowflakeConnectionPool", "named_to_qmark"]


def _deprecated(old: str, instead: str) -> None:
    warnings.warn(
        f"sygnify.connectors.snowflake.{old} is deprecated and goes in the next release; {instead}",
        DeprecationWarning,
        stacklevel=3,
    )


def named_to_qmark(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """Rewrite ``:name`` placeholders to ``?`` and order the values (deprecated).

    ``query``, ``stream`` and ``execute`` take ``:name`` parameters with a mapping themselves.
    """
    _deprecated("named_to_qmark", "query(), stream() and execute() take :name parameters with a mapping")
    statement, values = bind_params(sql, params, "qmark", backslash_escapes=True)
    return statement, values or []


class SnowflakeConnectionPool(ConnectionPool):
    """The shared :class:`ConnectionPool` as the Snowflake connector builds it (deprecated)."""

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        size: int = 4,
        checkout_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _deprecated("SnowflakeConnectionPool", "a connection's pool is connection.pool (a ConnectionPool)")
        super().__init__(
            factory,
            kind="snowflake",
            size=size,
            checkout_timeout=checkout_timeout,
            is_failure=is_connection_failure,
            clock=clock,
        )
