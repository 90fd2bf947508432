"""Deprecated path: moved to :mod:`sygnify.events` (kept for one release)."""

import warnings
from typing import Any

from sygnify import events as _events
from sygnify._moved import warn_moved
from sygnify.events import (  # noqa: F401 - re-exported for the old path
    EVENTS,
    BreakerState,
    ConnectorCall,
    ConnectorRetry,
    EventName,
    HandlerChunk,
    HandlerFinish,
    Listener,
    ModelPrediction,
    ModelRetry,
    SourceAck,
    SourceDeadLetter,
    SourceRead,
    SourceReconnect,
    listening,
    subscribe,
)

__all__ = _events.__all__

warn_moved("sygnify.monitoring.hooks", "sygnify.events")


def emit(event: str, /, **fields: Any) -> None:
    """The old ``hooks.emit``: took any name. An undeclared one now warns and is not delivered."""
    if event not in EVENTS:
        warnings.warn(
            f"event {event!r} is not declared in sygnify.events, so it is not delivered; "
            "sygnify.events.emit() only takes the declared events (sygnify.events.EVENTS)",
            DeprecationWarning,
            stacklevel=2,
        )
        return
    _events.emit(event, **fields)  # type: ignore[call-overload]
