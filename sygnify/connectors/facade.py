"""``CloudDataConnector``: one entry point to every data source, by name and type."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from typing_extensions import Self

from sygnify.config import find_config_file, resolve_connection
from sygnify.connectors.pool import ClientPool
from sygnify.connectors.protocols import Connector, HealthStatus
from sygnify.connectors.registry import CONNECTORS
from sygnify.errors import ConfigurationError, NotFoundError
from sygnify.plugins import PluginContext

if TYPE_CHECKING:
    from sygnify.connectors.local.connector import LocalConnector

__all__ = ["CloudDataConnector"]


class CloudDataConnector:
    """Open, name, share and close connections to data sources.

    Settings come from keyword arguments, then ``SYGNIFY_<NAME>__<FIELD>`` environment
    variables, then ``[connections.<name>]`` in the TOML config file. Connections with the
    same configuration share one pooled client.

    >>> import tempfile
    >>> with CloudDataConnector() as connector:
    ...     lake = connector.connect("local", name="lake", root=tempfile.mkdtemp())
    ...     connector.get("lake") is lake, connector.health()["lake"].ok
    (True, True)
    """

    def __init__(
        self,
        *,
        config_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._config_file = Path(config_file) if config_file is not None else find_config_file(self._environ)
        self._pool = ClientPool()
        self._connections: dict[str, Connector] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    @staticmethod
    def available() -> list[str]:
        """Names of the connector plugins: sygnify's built-ins and installed third-party ones."""
        return CONNECTORS.names()

    @overload
    def connect(
        self, type: Literal["local"], /, name: str | None = None, **config: Any
    ) -> LocalConnector: ...

    @overload
    def connect(self, type: str | None = None, /, name: str | None = None, **config: Any) -> Connector: ...

    def connect(self, type: str | None = None, /, name: str | None = None, **config: Any) -> Connector:
        """Open a connection of connector ``type`` (e.g. ``"local"``, ``"s3"``).

        ``name`` registers it for :meth:`get` and selects its settings in the config file
        and environment; with only a name, the type comes from there too. What the
        connection can do depends on its connector (``connection.capabilities``): an
        orchestrator such as ``azure_data_factory`` lists and checks health, but holds no data.
        """
        connector_type, options = resolve_connection(
            name, type, config, environ=self._environ, config_file=self._config_file
        )
        factory = CONNECTORS.load(connector_type)
        with self._lock:
            if name is not None and name in self._connections:
                raise ConfigurationError(
                    f"a connection named {name!r} is already open; use get({name!r}) or close it first",
                    resource=name,
                )
            connection_name = name or f"{connector_type}-{next(self._counter)}"
            context = PluginContext(connection_name, pool=self._pool)
            connection = factory.from_config(options, context=context)
            self._connections[connection_name] = connection
        return connection

    def get(self, name: str) -> Connector:
        """The open connection called ``name``."""
        try:
            return self._connections[name]
        except KeyError:
            open_names = ", ".join(sorted(self._connections)) or "none"
            raise NotFoundError(
                f"no open connection named {name!r}; open ones: {open_names}", resource=name
            ) from None

    def close(self, name: str) -> None:
        """Close one connection and forget it."""
        with self._lock:
            connection = self._connections.pop(name, None)
        if connection is None:
            raise NotFoundError(f"no open connection named {name!r}", resource=name)
        connection.close()

    def close_all(self) -> None:
        """Close every open connection (pooled clients close with their last user)."""
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()

    def health(self) -> dict[str, HealthStatus]:
        """Health of every open connection, by name."""
        return {name: connection.health() for name, connection in list(self._connections.items())}

    def __contains__(self, name: object) -> bool:
        return name in self._connections

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._connections))

    def __len__(self) -> int:
        return len(self._connections)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close_all()

    def __repr__(self) -> str:
        return f"<CloudDataConnector connections={sorted(self._connections)}>"
