"""A small pool of DB-API connections (they are not thread-safe), checked out one user at a time.

Every SQL connector draws its connections from one :class:`ConnectionPool`; the connector
says what kind of database it is (for messages) and which exceptions mean "this connection
is broken" (it is then closed instead of returned).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sygnify.errors import ConfigurationError, OperationTimeoutError

__all__ = ["ConnectionPool"]


def _never(exc: BaseException) -> bool:
    return False


class ConnectionPool:
    """At most ``size`` connections made by ``factory``, checked out one user at a time.

    ``kind`` names the database in messages; ``is_failure(exc)`` tells whether an exception
    raised while a connection was in use means the connection is broken (it is closed
    instead of going back to the pool).

    >>> made = []
    >>> pool = ConnectionPool(lambda: made.append(object()) or made[-1], kind="postgres", size=1)
    >>> with pool.connection() as first:
    ...     pass
    >>> with pool.connection() as second:
    ...     second is first, len(made)
    (True, 1)
    >>> pool.close(); pool.checkout()
    Traceback (most recent call last):
    ...
    sygnify.errors.ConfigurationError: the postgres connection pool is closed; open a new ...
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        kind: str,
        size: int = 4,
        checkout_timeout: float = 60.0,
        is_failure: Callable[[BaseException], bool] = _never,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self.kind = kind
        self.size = size
        self.checkout_timeout = checkout_timeout
        self.is_failure = is_failure
        self._clock = clock
        self._condition = threading.Condition()
        self._idle: list[Any] = []
        self._open = 0
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections made and not yet closed (idle or checked out)."""
        with self._condition:
            return self._open

    def checkout(self) -> Any:
        """A connection for the caller's exclusive use; give it back with :meth:`checkin`."""
        deadline = self._clock() + self.checkout_timeout
        with self._condition:
            while True:
                if self._closed:
                    raise ConfigurationError(
                        f"the {self.kind} connection pool is closed; open a new connection with connect()"
                    )
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
                        f"no {self.kind} connection became free within {self.checkout_timeout:g} s "
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
        """Check a connection out for a ``with`` block; a broken one is closed, not returned."""
        connection = self.checkout()
        discard = False
        try:
            yield connection
        except Exception as exc:
            discard = self.is_failure(exc)
            raise
        except BaseException:
            discard = True  # interrupted mid-command (KeyboardInterrupt...): the connection may be busy
            raise
        finally:
            self.checkin(connection, discard=discard)

    def close(self) -> None:
        """Close the idle connections; checked-out ones are closed when they come back."""
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
