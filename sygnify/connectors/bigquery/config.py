"""The ``bigquery`` connector's configuration, the credentials it builds, and its SDK clients.

The credential options are Google Cloud's shared ones
(:class:`sygnify.clouds.gcp.GcpCredentials`), in order of precedence: a service-account
key (``credentials_file`` or ``credentials_json``), an OAuth access token
(``access_token``; ``oauth_token`` is its old name), none at all (``anonymous``, for
emulators), else application default credentials; ``impersonate_service_account`` wraps
any of them. Nothing here touches the network until a client makes a request:

    >>> config = BigQueryConfig(project="p", access_token="ya29.secret")
    >>> credentials, implied_project = gcp_credentials(config)
    >>> type(credentials).__module__, implied_project, "ya29" in repr(config)
    ('google.oauth2.credentials', None, False)
    >>> BigQueryConfig(project="p", anonymous=True, access_token="t")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for BigQueryConfig
    ...
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.cloud import bigquery
from pydantic import Field

from sygnify.clouds.gcp import GcpCredentials, gcp_credentials
from sygnify.config import ConnectorConfig
from sygnify.errors import ConfigurationError

__all__ = ["NO_RETRY", "BigQueryClients", "BigQueryConfig", "bigquery_credentials", "open_clients"]

#: sygnify's RetryPolicy retries transient errors; the SDK's own retries would multiply them.
NO_RETRY = Retry(predicate=lambda _exc: False)

#: The credentials of a configuration (their home is ``sygnify.clouds.gcp``).
bigquery_credentials = gcp_credentials


class BigQueryConfig(ConnectorConfig, GcpCredentials):
    """Options of the ``bigquery`` connector.

    Credentials, in order of precedence: ``credentials_file`` or ``credentials_json`` (a
    service-account key), ``access_token`` (an OAuth access token), ``anonymous``
    (emulators only), else application default credentials. ``impersonate_service_account``
    wraps any of them to act as that service account.
    """

    deprecated_options: ClassVar[Mapping[str, str]] = {"oauth_token": "access_token"}

    project: str | None = Field(None, description="Project that runs jobs (default: from credentials).")
    location: str | None = Field(None, description="Job location, e.g. 'EU' or 'us-central1'.")
    dataset: str | None = Field(None, description="Dataset of table names given without one.")
    endpoint: str | None = Field(
        None, description="REST endpoint, e.g. http://127.0.0.1:9050 for an emulator."
    )
    storage_endpoint: str | None = Field(
        None, description="Storage Read API gRPC host:port; http://host:port means plaintext (emulators)."
    )
    use_storage_api: bool = Field(True, description="Read results with the Storage Read API when possible.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels put on every job.")
    job_timeout: float | None = Field(None, gt=0, description="Seconds a query/load job may take.")
    maximum_bytes_billed: int | None = Field(None, ge=0)
    page_size: int = Field(50_000, ge=1, description="Rows per REST result page.")
    insert_chunk_rows: int = Field(500, ge=1, le=50_000, description="Rows per insertAll request.")


@dataclass
class BigQueryClients:
    """The REST client and, when the Storage Read API is on, the gRPC read client of one configuration."""

    bigquery: bigquery.Client
    storage: Any | None

    def close(self) -> None:
        cast(Any, self.bigquery).close()
        transport = getattr(self.storage, "transport", None) if self.storage is not None else None
        if transport is not None:
            transport.close()


def open_clients(config: BigQueryConfig) -> BigQueryClients:
    """Build the clients for ``config`` (no request is sent yet).

    A ``storage_endpoint`` of ``http://host:port`` means a plaintext gRPC channel (emulators).
    """
    credentials, implied_project = gcp_credentials(config)
    project = config.project or implied_project
    if not project:
        raise ConfigurationError("no project: pass project=... (or use credentials that name one)")
    options = ClientOptions(api_endpoint=config.endpoint) if config.endpoint else None
    client = bigquery.Client(
        project=project, credentials=credentials, location=config.location, client_options=options
    )
    storage = None
    if config.use_storage_api:
        BigQueryReadClient: Any = importlib.import_module("google.cloud.bigquery_storage").BigQueryReadClient
        BigQueryReadGrpcTransport: Any = importlib.import_module(
            "google.cloud.bigquery_storage_v1.services.big_query_read.transports"
        ).BigQueryReadGrpcTransport

        endpoint = config.storage_endpoint
        if endpoint is not None and endpoint.startswith("http://"):
            grpc: Any = importlib.import_module("grpc")
            channel = grpc.insecure_channel(endpoint.removeprefix("http://"))
            storage = BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))
        else:
            storage_options = (
                ClientOptions(api_endpoint=endpoint.removeprefix("https://")) if endpoint else None
            )
            storage = BigQueryReadClient(credentials=credentials, client_options=storage_options)
    return BigQueryClients(client, storage)
