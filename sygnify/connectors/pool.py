"""Client pooling: one SDK client per distinct configuration, shared and reference-counted."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["ClientPool"]

C = TypeVar("C")


@dataclass
class _Entry:
    client: Any
    close: Callable[[Any], None] | None
    users: int


class ClientPool:
    """Clients keyed by a configuration fingerprint, created once and closed with their last user.

    A :class:`~sygnify.connectors.CloudDataConnector` owns one pool, so two connections
    with the same configuration share one (thread-safe) SDK client.

    >>> pool = ClientPool()
    >>> a = pool.acquire("cfg-1", lambda: object())
    >>> b = pool.acquire("cfg-1", lambda: object())
    >>> a is b, len(pool)
    (True, 1)
    >>> pool.release("cfg-1"); pool.release("cfg-1"); len(pool)
    0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def acquire(self, key: str, factory: Callable[[], C], close: Callable[[C], None] | None = None) -> C:
        """The client for ``key``, made by ``factory()`` if there is none yet."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _Entry(factory(), close, 0)
                self._entries[key] = entry
            entry.users += 1
            client: C = entry.client
            return client

    def release(self, key: str) -> None:
        """Give a client back; the last release closes it."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.users -= 1
            if entry.users > 0:
                return
            del self._entries[key]
        if entry.close is not None:
            entry.close(entry.client)

    def __len__(self) -> int:
        return len(self._entries)
