"""The ``bigquery`` connector: Google BigQuery through the Storage Read API."""

from sygnify.connectors.bigquery.connector import (
    DIALECT,
    NO_RETRY,
    BigQueryConfig,
    BigQueryConnector,
    arrow_to_bigquery_schema,
    query_parameter,
    translate_bigquery_error,
)

__all__ = [
    "BigQueryConfig",
    "BigQueryConnector",
    "DIALECT",
    "NO_RETRY",
    "arrow_to_bigquery_schema",
    "query_parameter",
    "translate_bigquery_error",
]
