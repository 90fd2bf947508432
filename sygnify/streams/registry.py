"""The registry of stream-source plugins (entry-point group ``sygnify.sources``).

>>> sorted(SOURCES.names())[:4]
['kafka', 'mqtt', 'nats', 'redis']
"""

from __future__ import annotations

from typing import Any, Protocol

from sygnify.errors import ConfigurationError
from sygnify.plugins import GROUPS, Registry
from sygnify.streams.base import StreamSource

__all__ = ["SOURCES", "SourceFactory", "open_source"]


class SourceFactory(Protocol):
    """What a source plugin's entry point loads: a class called with keyword options."""

    def __call__(self, **options: Any) -> StreamSource: ...


def _validate(name: str, plugin: object) -> SourceFactory:
    if not callable(plugin) or not all(callable(getattr(plugin, m, None)) for m in ("read", "close")):
        raise ConfigurationError(
            f"source plugin {name!r} ({plugin!r}) is not a class with read(max_records=, timeout=) "
            "and close(); subclass sygnify.streams.BaseSource",
            resource=name,
        )
    return plugin  # type: ignore[return-value, unused-ignore]


#: sygnify's stream sources by name; the extra that installs each one's client library.
SOURCES: Registry[SourceFactory] = Registry(
    GROUPS["source"],
    kind="stream source",
    extras={"kafka": "kafka", "redis": "redis", "nats": "nats", "mqtt": "mqtt"},
    validate=_validate,
)


def open_source(name: str, **options: Any) -> StreamSource:
    """Create the source registered as ``name`` with ``options``.

    ``open_source("redis", url="redis://127.0.0.1:6379/0", stream="sensors", group="ml")``
    """
    return SOURCES.load(name)(**options)
