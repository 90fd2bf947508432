"""The registry of connector plugins (entry-point group ``sygnify.connectors``).

Built-ins come from :data:`sygnify.plugins.BUILTINS`, so they are found from a plain
checkout too:

>>> {"local", "s3", "mongodb", "azure_data_factory"} <= set(CONNECTORS.names())
True
"""

from __future__ import annotations

from typing import Any

from sygnify.connectors.protocols import Connector
from sygnify.errors import ConfigurationError
from sygnify.plugins import GROUPS, LegacyFactory, PluginContext, PluginFactory, Registry, warn_legacy_factory

__all__ = ["CONNECTORS", "ConnectorFactory"]

#: What a connector plugin's target must load: a class with ``from_config(config, *, context)``.
ConnectorFactory = PluginFactory[Connector]


def _from_options(plugin: Any, options: dict[str, Any], context: PluginContext) -> Connector:
    connection: Connector = plugin.from_options(options, name=context.name, pool=context.pool)
    return connection


def _validate(name: str, plugin: object) -> ConnectorFactory:
    if callable(getattr(plugin, "from_config", None)):
        return plugin  # type: ignore[return-value]
    if callable(getattr(plugin, "from_options", None)):
        warn_legacy_factory("connector", name, plugin, "from_options(options, name=, pool=)")
        return LegacyFactory(plugin, _from_options)
    raise ConfigurationError(
        f"connector plugin {name!r} ({plugin!r}) has no from_config(config, *, context); "
        "subclass sygnify.connectors.BaseConnector",
        resource=name,
    )


#: sygnify's connectors and third-party ones, by name.
CONNECTORS: Registry[ConnectorFactory] = Registry(GROUPS["connector"], kind="connector", validate=_validate)
