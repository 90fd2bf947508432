"""A small pool of Snowflake connections (they are not thread-safe), checked out one user at a time."""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sygnify.errors import ConfigurationError, OperationTimeoutError

__all__ = ["SnowflakeConnectionPool", "is_connection_failure"]


class SnowflakeConnectionPool:
    """A small pool of Snowflake connections: at most ``size``, checked out one user at a time.

    >>> made = []
    >>> pool = SnowflakeConnectionPool(lambda: made.append(object()) or made[-1], size=1)
    >>> with pool.connection() as first:
    ...     pass
    >>> with pool.connection() as second:
    ...     second is first, len(made)
    (True, 1)
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        size: int = 4,
        checkout_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self.size = size
        self.checkout_timeout = checkout_timeout
        self._clock = clock
        self._condition = threading.Condition()
        self._idle: list[Any] = []
        self._open = 0
        self._closed = False

    def checkout(self) -> Any:
        """A connection for the caller's exclusive use; give it back with :meth:`checkin`."""
        deadline = self._clock() + self.checkout_timeout
        with self._condition:
            while True:
                if self._closed:
                    raise ConfigurationError("the Snowflake connection pool is closed")
                while self._idle:
                    connection = self._idle.pop()
                    if not _is_closed(connection):
                        return connection
                    self._open -= 1
                if self._open < self.size:
                    self._open += 1
                    break
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise OperationTimeoutError(
                        f"no Snowflake connection became free within {self.checkout_timeout:g} s "
                        f"(pool_size={self.size}); raise pool_size or close streams you no longer read",
                        resource="pool",
                    )
                self._condition.wait(remaining)
        try:
            return self._factory()
        except BaseException:
            with self._condition:
                self._open -= 1
                self._condition.notify()
            raise

    def checkin(self, connection: Any, *, discard: bool = False) -> None:
        """Return a connection; ``discard`` closes it (after a connection-level failure)."""
        with self._condition:
            if discard or self._closed or _is_closed(connection):
                self._open -= 1
                keep = False
            else:
                self._idle.append(connection)
                keep = True
            self._condition.notify()
        if not keep:
            _close_quietly(connection)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        connection = self.checkout()
        discard = False
        try:
            yield connection
        except Exception as exc:
            discard = is_connection_failure(exc)
            raise
        finally:
            self.checkin(connection, discard=discard)

    def close(self) -> None:
        with self._condition:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._condition.notify_all()
        for connection in idle:
            _close_quietly(connection)


def _is_closed(connection: Any) -> bool:
    is_closed = getattr(connection, "is_closed", None)
    return bool(is_closed()) if callable(is_closed) else False


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):
        close = getattr(connection, "close", None)
        if callable(close):
            close()


def is_connection_failure(exc: BaseException) -> bool:
    try:
        errors = importlib.import_module("snowflake.connector.errors")
    except ImportError:  # pragma: no cover - the connector is installed with this module
        return False
    return isinstance(exc, errors.OperationalError | errors.InterfaceError)
