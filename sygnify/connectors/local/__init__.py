"""The embedded ``local`` connector: files under a root, SQL through a sandboxed DuckDB."""

from sygnify.connectors.local.connector import (
    LocalConfig,
    LocalConnector,
)

__all__ = [
    "LocalConfig",
    "LocalConnector",
]
