"""The DB-API connection pool shared by the SQL connectors (sygnify.connectors._sql.pool)."""

from __future__ import annotations

import pytest

from sygnify.connectors._sql.pool import ConnectionPool
from sygnify.errors import ConfigurationError, OperationTimeoutError


class Connection:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def use(pool: ConnectionPool, error: Exception) -> None:
    with pool.connection():
        raise error


def test_reuses_discards_broken_connections_and_names_the_database() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 10.0  # every look at the clock jumps past the checkout timeout
        return now[0]

    pool = ConnectionPool(
        Connection,
        kind="postgres",
        size=1,
        checkout_timeout=5.0,
        is_failure=lambda e: isinstance(e, OSError),
        clock=clock,
    )
    first = pool.checkout()
    with pytest.raises(OperationTimeoutError, match="no postgres connection became free within 5 s"):
        pool.checkout()
    pool.checkin(first)
    with pytest.raises(ValueError, match="usable"):
        use(pool, ValueError("a query error leaves the connection usable"))
    assert not first.closed
    with pytest.raises(OSError, match="reset"):
        use(pool, OSError("connection reset"))
    assert first.closed
    assert pool.open_connections == 0
    with pool.connection() as second:
        assert second is not first
    pool.close()
    assert second.closed
    with pytest.raises(ConfigurationError, match="postgres connection pool is closed"):
        pool.checkout()


def test_a_failing_factory_frees_its_slot() -> None:
    calls: list[int] = []

    def factory() -> Connection:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("refused")
        return Connection()

    pool = ConnectionPool(factory, kind="snowflake", size=1, checkout_timeout=0.01)
    with pytest.raises(OSError, match="refused"):
        pool.checkout()
    assert pool.open_connections == 0
    assert isinstance(pool.checkout(), Connection)


def test_an_interrupted_block_closes_its_connection_instead_of_returning_it_busy() -> None:
    pool = ConnectionPool(Connection, kind="postgres", size=1, is_failure=lambda e: False)
    with pytest.raises(KeyboardInterrupt), pool.connection() as first:
        raise KeyboardInterrupt
    assert first.closed
    with pool.connection() as second:
        assert second is not first
