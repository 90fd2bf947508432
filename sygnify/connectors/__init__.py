"""Connectors: one protocol over files, object stores, warehouses and databases."""

from sygnify.connectors.base import BaseConnector, Connector, HealthStatus, WriteMode, WriteResult
from sygnify.connectors.facade import CloudDataConnector
from sygnify.connectors.pool import ClientPool
from sygnify.connectors.registry import CONNECTORS

__all__ = [
    "CONNECTORS",
    "BaseConnector",
    "ClientPool",
    "CloudDataConnector",
    "Connector",
    "HealthStatus",
    "WriteMode",
    "WriteResult",
]
