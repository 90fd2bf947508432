"""The registry of stream-source plugins (entry-point group ``sygnify.sources``).

>>> sorted(SOURCES.names())[:4]
['kafka', 'mqtt', 'nats', 'redis']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sygnify.config import find_config_file, load_section, merge_settings
from sygnify.errors import ConfigurationError
from sygnify.plugins import GROUPS, LegacyFactory, PluginContext, PluginFactory, Registry, warn_legacy_factory
from sygnify.streams.base import StreamSource

__all__ = ["SOURCES", "SourceFactory", "open_source"]

#: What a source plugin's target loads: a class with ``from_config(config, *, context)``.
SourceFactory = PluginFactory[StreamSource]


def _construct(plugin: Any, options: dict[str, Any], context: PluginContext) -> StreamSource:
    source: StreamSource = plugin(**options)
    return source


def _validate(name: str, plugin: object) -> SourceFactory:
    if not callable(plugin) or not all(callable(getattr(plugin, m, None)) for m in ("read", "close")):
        raise ConfigurationError(
            f"source plugin {name!r} ({plugin!r}) is not a class with read(max_records=, timeout=) "
            "and close(); subclass sygnify.streams.BaseSource",
            resource=name,
        )
    if callable(getattr(plugin, "from_config", None)):
        return plugin  # type: ignore[return-value]
    warn_legacy_factory("stream source", name, plugin, "constructor called with keyword options")
    return LegacyFactory(plugin, _construct)


#: sygnify's stream sources (from :data:`sygnify.plugins.BUILTINS`) and third-party ones, by name.
SOURCES: Registry[SourceFactory] = Registry(GROUPS["source"], kind="stream source", validate=_validate)


def open_source(name: str, *, config_file: str | Path | None = None, **options: Any) -> StreamSource:
    """Open the source ``name``: a ``[sources.<name>]`` section of the config file, or a plugin.

    A section names its plugin with ``type`` (default: the section's own name) and holds
    the source's options; keyword ``options`` win over it. Everything is validated by the
    plugin's ``config_model``::

        # sygnify.toml
        [sources.sensors]
        type = "redis"
        stream = "sensors"
        group = "ml"

    ``open_source("sensors")``, or without a file
    ``open_source("redis", url="redis://127.0.0.1:6379/0", stream="sensors", group="ml")``.
    ``config_file`` defaults to ``$SYGNIFY_CONFIG``, else ``./sygnify.toml`` if it exists.
    """
    path = Path(config_file) if config_file is not None else find_config_file()
    settings = merge_settings(load_section("sources", name, config_file=path), options)
    plugin = str(settings.pop("type", None) or name)
    return SOURCES.load(plugin).from_config(settings, context=PluginContext(name))
