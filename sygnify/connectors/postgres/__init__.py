"""The ``postgres`` connector: PostgreSQL through the Arrow-native ADBC driver."""

from sygnify.connectors.postgres.config import PostgresConfig, connection_uri
from sygnify.connectors.postgres.connector import DIALECT, PostgresConnector
from sygnify.connectors.postgres.errors import translate_postgres_error

__all__ = ["DIALECT", "PostgresConfig", "PostgresConnector", "connection_uri", "translate_postgres_error"]
