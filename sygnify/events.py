"""Small, dependency-free event hooks that every layer emits to and monitoring listens on.

Lower layers (connectors, processing, ml) call :func:`emit`; exporters such as the
Prometheus metrics in :mod:`sygnify.monitoring.metrics` subscribe. With no subscriber an
emit costs one empty-list check.

>>> seen = []
>>> unsubscribe = subscribe(lambda event, fields: seen.append((event, fields["rows"])))
>>> emit("handler.chunk", rows=10)
>>> unsubscribe(); emit("handler.chunk", rows=99)
>>> seen
[('handler.chunk', 10)]

Events emitted by sygnify (fields in parentheses):

- ``connector.call`` (connector, name, operation, outcome "ok"|"error", error, duration_s)
- ``connector.retry`` (connector, name, attempt, error, delay_s)
- ``breaker.state`` (breaker, old, new)
- ``handler.chunk`` / ``handler.finish`` (mode, rows_in, rows_out, duration_s, ...)
- ``model.prediction`` (model, version, rows, latency_s, outcome, error)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Listener", "emit", "listening", "subscribe"]

Listener = Callable[[str, Mapping[str, Any]], None]

_logger = logging.getLogger(__name__)
_lock = threading.Lock()
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Call ``listener(event, fields)`` for every event; returns a function that unsubscribes."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def listening() -> bool:
    """Whether anyone subscribed: hot paths check this before building an event's fields."""
    return bool(_listeners)


def emit(event: str, **fields: Any) -> None:
    """Send ``event`` to every listener; a failing listener is logged, never raised."""
    if not _listeners:
        return
    for listener in list(_listeners):
        try:
            listener(event, fields)
        except Exception:  # a metrics bug must never break a data pipeline
            _logger.exception("sygnify hook listener failed on %s", event)
