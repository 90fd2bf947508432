"""The ``snowflake`` connector: Snowflake through its Arrow result batches."""

from sygnify.connectors.snowflake.connector import (
    DIALECT,
    PoolExhaustedError,
    SnowflakeConfig,
    SnowflakeConnectionPool,
    SnowflakeConnector,
    connect_arguments,
    named_to_qmark,
    quote_identifier,
    snowflake_type,
    translate_snowflake_error,
)

__all__ = [
    "DIALECT",
    "PoolExhaustedError",
    "SnowflakeConfig",
    "SnowflakeConnectionPool",
    "SnowflakeConnector",
    "connect_arguments",
    "named_to_qmark",
    "quote_identifier",
    "snowflake_type",
    "translate_snowflake_error",
]
