"""Connectors: capability protocols over files, object stores, warehouses and databases."""

from sygnify.connectors.base import BaseConnector
from sygnify.connectors.facade import CloudDataConnector
from sygnify.connectors.pool import ClientPool
from sygnify.connectors.protocols import (
    Capability,
    Catalog,
    Connector,
    HealthStatus,
    Healthy,
    Queryable,
    Readable,
    Writable,
    WriteMode,
    WriteResult,
)
from sygnify.connectors.registry import CONNECTORS

__all__ = [
    "CONNECTORS",
    "BaseConnector",
    "Capability",
    "Catalog",
    "ClientPool",
    "CloudDataConnector",
    "Connector",
    "HealthStatus",
    "Healthy",
    "Queryable",
    "Readable",
    "Writable",
    "WriteMode",
    "WriteResult",
]
