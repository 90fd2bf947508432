"""The registry of connector plugins (entry-point group ``sygnify.connectors``)."""

from __future__ import annotations

from typing import Any, Protocol

from sygnify.connectors.base import Connector
from sygnify.connectors.pool import ClientPool
from sygnify.errors import ConfigurationError
from sygnify.plugins import GROUPS, Registry

__all__ = ["CONNECTORS", "ConnectorFactory"]


class ConnectorFactory(Protocol):
    """What a connector plugin's entry point must load: a class with ``from_options``."""

    def from_options(
        self, options: dict[str, Any], *, name: str | None = ..., pool: ClientPool | None = ...
    ) -> Connector: ...


def _validate(name: str, plugin: object) -> ConnectorFactory:
    if not callable(getattr(plugin, "from_options", None)):
        raise ConfigurationError(
            f"connector plugin {name!r} ({plugin!r}) has no from_options(options, name=, pool=); "
            "subclass sygnify.connectors.BaseConnector",
            resource=name,
        )
    return plugin  # type: ignore[return-value]


#: sygnify's connectors by name; the extra that installs each one's SDK.
CONNECTORS: Registry[ConnectorFactory] = Registry(
    GROUPS["connector"],
    kind="connector",
    extras={
        "s3": "s3",
        "azure_blob": "azure",
        "bigquery": "bigquery",
        "snowflake": "snowflake",
        "mongodb": "mongodb",
        "azure_data_factory": "adf",
    },
    validate=_validate,
)
