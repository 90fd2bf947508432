"""Declared events that every layer emits and monitoring listens to.

Lower layers (connectors, processing, ml, streams) call :func:`emit`; observers such as
the Prometheus metrics in :mod:`sygnify.monitoring.metrics` call :func:`subscribe`. Every
event is declared once here, with a typed payload (a ``TypedDict``) in :data:`EVENTS`:
:func:`emit` refuses an undeclared name, and checks the payload's fields whenever someone
listens. With no listener an emit costs a set lookup and an empty-tuple check, so hot
paths (one-record predictions) may emit freely; :func:`listening` tells them whether it
is worth building an expensive payload at all.

>>> seen = []
>>> unsubscribe = subscribe(lambda event, fields: seen.append((event, fields["rows_in"])),
...                         events=["handler.chunk"])
>>> emit("handler.chunk", mode="chunked", rows_in=10, rows_out=10, duration_s=0.1)
>>> emit("source.ack", source="orders", messages=3)  # not in the listener's filter
>>> unsubscribe(); emit("handler.chunk", mode="chunked", rows_in=99, rows_out=99, duration_s=0.1)
>>> seen
[('handler.chunk', 10)]
>>> emit("handler.chunks", rows=1)
Traceback (most recent call last):
...
sygnify.errors.ConfigurationError: undeclared event(s) 'handler.chunks'; declared events are ...

The events sygnify emits (every field is always present):

====================== =================================================== ================================
event                  fields                                              emitted by
====================== =================================================== ================================
``connector.call``     connector, name, operation, outcome ("ok"|"error"), each connector call (connectors)
                       error (class name or None), duration_s
``connector.retry``    name ("type:connection"), attempt, error, delay_s   a retried connector call (config)
``breaker.state``      breaker, old, new ("closed"|"half_open"|"open")     a breaker changing state
``handler.chunk``      mode, rows_in, rows_out, duration_s                 each chunk of LargeDataHandler
``handler.finish``     mode, rows_in, rows_out, duration_s, chunks,        the end of a LargeDataHandler run
                       errors, peak_memory (bytes)
``model.prediction``   model, version, rows, latency_s, outcome            each model call (ml)
                       ("ok"|"error"), error (class name or None)
``model.retry``        model, attempt, error, delay_s                      a retried remote model call
``source.read``        source, rows, dead_letters, duration_s              each batch a stream source read
``source.ack``         source, messages                                    an acknowledged batch
``source.reconnect``   source, attempt, error, delay_s                     a source reconnecting
``source.dead_letter`` source, messages                                    poison messages dead-lettered
====================== =================================================== ================================
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, TypedDict, Unpack, overload

from sygnify.errors import ConfigurationError

__all__ = [
    "EVENTS",
    "BreakerState",
    "ConnectorCall",
    "ConnectorRetry",
    "EventName",
    "HandlerChunk",
    "HandlerFinish",
    "Listener",
    "ModelPrediction",
    "ModelRetry",
    "SourceAck",
    "SourceDeadLetter",
    "SourceRead",
    "SourceReconnect",
    "emit",
    "listening",
    "subscribe",
]


class ConnectorCall(TypedDict):
    """``connector.call``: one call of a connector (``outcome`` is ``"ok"`` or ``"error"``)."""

    connector: str
    name: str
    operation: str
    outcome: str
    error: str | None
    duration_s: float


class ConnectorRetry(TypedDict):
    """``connector.retry``: a connector call retried (``name`` is ``"type:connection"``)."""

    name: str
    attempt: int
    error: str
    delay_s: float


class BreakerState(TypedDict):
    """``breaker.state``: a circuit breaker moved from ``old`` to ``new``."""

    breaker: str
    old: str
    new: str


class HandlerChunk(TypedDict):
    """``handler.chunk``: one chunk through LargeDataHandler."""

    mode: str
    rows_in: int
    rows_out: int
    duration_s: float


class HandlerFinish(TypedDict):
    """``handler.finish``: a LargeDataHandler run ended (``peak_memory`` in bytes)."""

    mode: str
    rows_in: int
    rows_out: int
    duration_s: float
    chunks: int
    errors: int
    peak_memory: int


class ModelPrediction(TypedDict):
    """``model.prediction``: one model call of ``rows`` rows."""

    model: str
    version: str
    rows: int
    latency_s: float
    outcome: str
    error: str | None


class ModelRetry(TypedDict):
    """``model.retry``: a remote model call retried."""

    model: str
    attempt: int
    error: str
    delay_s: float


class SourceRead(TypedDict):
    """``source.read``: a stream source read a batch (``dead_letters`` poison messages in it)."""

    source: str
    rows: int
    dead_letters: int
    duration_s: float


class SourceAck(TypedDict):
    """``source.ack``: a batch of ``messages`` was acknowledged."""

    source: str
    messages: int


class SourceReconnect(TypedDict):
    """``source.reconnect``: a source lost its connection and reconnects after ``delay_s``."""

    source: str
    attempt: int
    error: str
    delay_s: float


class SourceDeadLetter(TypedDict):
    """``source.dead_letter``: ``messages`` poison messages went to the dead-letter target."""

    source: str
    messages: int


EventName: TypeAlias = Literal[
    "connector.call",
    "connector.retry",
    "breaker.state",
    "handler.chunk",
    "handler.finish",
    "model.prediction",
    "model.retry",
    "source.read",
    "source.ack",
    "source.reconnect",
    "source.dead_letter",
]

#: Every declared event: its name and the ``TypedDict`` of its payload.
EVENTS: Mapping[EventName, type[Mapping[str, Any]]] = MappingProxyType(
    {
        "connector.call": ConnectorCall,
        "connector.retry": ConnectorRetry,
        "breaker.state": BreakerState,
        "handler.chunk": HandlerChunk,
        "handler.finish": HandlerFinish,
        "model.prediction": ModelPrediction,
        "model.retry": ModelRetry,
        "source.read": SourceRead,
        "source.ack": SourceAck,
        "source.reconnect": SourceReconnect,
        "source.dead_letter": SourceDeadLetter,
    }
)

Listener = Callable[[str, Mapping[str, Any]], None]

# (required, allowed field names, payload name) per event, computed once for the listening path.
_FIELDS: dict[str, tuple[frozenset[str], frozenset[str], str]] = {
    name: (
        frozenset(payload.__required_keys__),  # type: ignore[attr-defined]
        frozenset(payload.__required_keys__ | payload.__optional_keys__),  # type: ignore[attr-defined]
        payload.__name__,
    )
    for name, payload in EVENTS.items()
}
_logger = logging.getLogger(__name__)
_lock = threading.Lock()
#: ``SYGNIFY_STRICT_EVENTS=1`` (sygnify's own test suite sets it): a payload that does not match
#: its declaration raises. Otherwise it is logged and the event dropped, so turning monitoring on
#: never breaks a pipeline.
STRICT = os.environ.get("SYGNIFY_STRICT_EVENTS", "") not in ("", "0", "false")
# Replaced, never mutated, so emit iterates a snapshot without copying or locking.
_listeners: tuple[tuple[Listener, frozenset[str] | None], ...] = ()


def _declared(names: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(names)
    unknown = sorted(chosen - _FIELDS.keys())
    if unknown:
        raise ConfigurationError(
            f"undeclared event(s) {', '.join(map(repr, unknown))}; "
            f"declared events are {', '.join(_FIELDS)} (see sygnify.events.EVENTS)",
            resource=unknown[0],
        )
    return chosen


def subscribe(listener: Listener, *, events: Iterable[EventName] | None = None) -> Callable[[], None]:
    """Call ``listener(event, fields)`` for every event, or only those in ``events``.

    Returns a function that unsubscribes. An undeclared name in ``events`` raises
    :class:`~sygnify.errors.ConfigurationError`.

    >>> stop = subscribe(print, events=["source.ack"])
    >>> emit("source.ack", source="orders", messages=2)
    source.ack {'source': 'orders', 'messages': 2}
    >>> stop()
    """
    global _listeners
    entry = (listener, None if events is None else _declared(events))
    with _lock:
        _listeners = (*_listeners, entry)

    def unsubscribe() -> None:
        global _listeners
        with _lock:
            _listeners = tuple(e for e in _listeners if e is not entry)

    return unsubscribe


def listening(event: EventName | None = None) -> bool:
    """Whether anyone listens (to ``event``): hot paths check this before building a payload."""
    if event is None:
        return bool(_listeners)
    return any(wanted is None or event in wanted for _, wanted in _listeners)


def _check(event: str, fields: Mapping[str, Any]) -> bool:
    """Whether ``fields`` match ``event``'s declared payload (raises instead when :data:`STRICT`)."""
    required, allowed, payload = _FIELDS[event]
    keys = fields.keys()
    if keys == required:
        return True
    problems = []
    if missing := sorted(required - keys):
        problems.append(f"missing field(s) {', '.join(missing)}")
    if unexpected := sorted(keys - allowed):
        problems.append(f"undeclared field(s) {', '.join(unexpected)}")
    if not problems:
        return True
    message = (
        f"event {event!r} emitted with {'; '.join(problems)}; its payload ({payload}) has "
        f"{', '.join(sorted(allowed))}: emit exactly those fields"
    )
    if STRICT:
        raise ConfigurationError(message, resource=event)
    _logger.warning("%s (event dropped)", message)
    return False


# One overload per declared event, so mypy checks the name and the payload of every emit.
@overload
def emit(event: Literal["connector.call"], /, **fields: Unpack[ConnectorCall]) -> None: ...
@overload
def emit(event: Literal["connector.retry"], /, **fields: Unpack[ConnectorRetry]) -> None: ...
@overload
def emit(event: Literal["breaker.state"], /, **fields: Unpack[BreakerState]) -> None: ...
@overload
def emit(event: Literal["handler.chunk"], /, **fields: Unpack[HandlerChunk]) -> None: ...
@overload
def emit(event: Literal["handler.finish"], /, **fields: Unpack[HandlerFinish]) -> None: ...
@overload
def emit(event: Literal["model.prediction"], /, **fields: Unpack[ModelPrediction]) -> None: ...
@overload
def emit(event: Literal["model.retry"], /, **fields: Unpack[ModelRetry]) -> None: ...
@overload
def emit(event: Literal["source.read"], /, **fields: Unpack[SourceRead]) -> None: ...
@overload
def emit(event: Literal["source.ack"], /, **fields: Unpack[SourceAck]) -> None: ...
@overload
def emit(event: Literal["source.reconnect"], /, **fields: Unpack[SourceReconnect]) -> None: ...
@overload
def emit(event: Literal["source.dead_letter"], /, **fields: Unpack[SourceDeadLetter]) -> None: ...
def emit(event: str, /, **fields: Any) -> None:
    """Send ``event`` to its listeners; a failing listener is logged, never raised.

    An undeclared ``event`` raises :class:`~sygnify.errors.ConfigurationError`. Payload
    fields are checked only when someone listens to ``event``: a mismatch is logged and the
    event dropped (it raises under :data:`STRICT`, as in sygnify's own tests).
    """
    if event not in _FIELDS:
        _declared([event])
    listeners = _listeners
    if not listeners:
        return
    wanting = [listener for listener, wanted in listeners if wanted is None or event in wanted]
    if not wanting or not _check(event, fields):
        return
    for listener in wanting:
        try:
            listener(event, fields)
        except Exception:  # a metrics bug must never break a data pipeline
            _logger.exception("sygnify event listener failed on %s", event)
