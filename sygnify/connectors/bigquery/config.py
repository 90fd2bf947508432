"""The ``bigquery`` connector's configuration, the credentials it builds, and its SDK clients.

Credentials, in order of precedence: a service-account key (``credentials_file`` or
``credentials_json``), a user OAuth access token (``oauth_token``), none at all
(``anonymous``, for emulators), else application default credentials;
``impersonate_service_account`` wraps any of them. Nothing here touches the network until
a client makes a request:

    >>> config = BigQueryConfig(project="p", oauth_token="ya29.secret")
    >>> credentials, implied_project = bigquery_credentials(config)
    >>> type(credentials).__module__, implied_project, "ya29" in repr(config)
    ('google.oauth2.credentials', None, False)
    >>> BigQueryConfig(project="p", anonymous=True, oauth_token="t")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for BigQueryConfig
    ...
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery
from pydantic import Field, SecretStr, model_validator

from sygnify.config import ConnectorConfig
from sygnify.errors import AuthenticationError, ConfigurationError

__all__ = ["NO_RETRY", "BigQueryClients", "BigQueryConfig", "bigquery_credentials", "open_clients"]

_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]

#: sygnify's RetryPolicy retries transient errors; the SDK's own retries would multiply them.
NO_RETRY = Retry(predicate=lambda _exc: False)


class BigQueryConfig(ConnectorConfig):
    """Options of the ``bigquery`` connector.

    Credentials, in order of precedence: ``credentials_file`` or ``credentials_json`` (a
    service-account key), ``oauth_token`` (a user access token), ``anonymous`` (emulators
    only), else application default credentials. ``impersonate_service_account`` wraps
    any of them to act as that service account.
    """

    project: str | None = Field(None, description="Project that runs jobs (default: from credentials).")
    location: str | None = Field(None, description="Job location, e.g. 'EU' or 'us-central1'.")
    dataset: str | None = Field(None, description="Dataset of table names given without one.")
    credentials_file: Path | None = Field(None, description="Service-account key file (JSON).")
    credentials_json: SecretStr | None = Field(None, description="Service-account key as JSON text.")
    oauth_token: SecretStr | None = Field(None, description="An OAuth 2 user access token.")
    anonymous: bool = Field(False, description="No credentials at all (for emulators).")
    impersonate_service_account: str | None = Field(None, description="Act as this service account.")
    impersonation_delegates: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=lambda: list(_SCOPES))
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

    @model_validator(mode="after")
    def _one_credential(self) -> BigQueryConfig:
        given = [
            name
            for name in ("credentials_file", "credentials_json", "oauth_token")
            if getattr(self, name) is not None
        ] + (["anonymous"] if self.anonymous else [])
        if len(given) > 1:
            raise ValueError(
                f"give at most one of credentials_file, credentials_json, oauth_token, "
                f"anonymous (got {', '.join(given)})"
            )
        return self


def bigquery_credentials(config: BigQueryConfig) -> tuple[Credentials, str | None]:
    """google-auth credentials for ``config`` and the project they imply (``None`` when they name none).

    Key material is never echoed: an unreadable key is an :class:`AuthenticationError` that
    names only the kind of problem.
    """
    # google-auth is untyped; go through Any rather than sprinkle ignores.
    service_account: Any = importlib.import_module("google.oauth2.service_account")
    user_credentials: Any = importlib.import_module("google.oauth2.credentials")

    project: str | None = None
    credentials: Credentials
    try:
        if config.credentials_file is not None:
            credentials = service_account.Credentials.from_service_account_file(
                str(config.credentials_file), scopes=config.scopes
            )
            project = getattr(credentials, "project_id", None)
        elif config.credentials_json is not None:
            info = json.loads(config.credentials_json.get_secret_value())
            credentials = service_account.Credentials.from_service_account_info(info, scopes=config.scopes)
            project = getattr(credentials, "project_id", None)
        elif config.oauth_token is not None:
            credentials = user_credentials.Credentials(token=config.oauth_token.get_secret_value())
        elif config.anonymous:
            credentials = cast(Any, AnonymousCredentials)()
        else:
            import google.auth

            credentials, project = google.auth.default(scopes=config.scopes)
    except FileNotFoundError:
        raise ConfigurationError(
            f"credentials_file {config.credentials_file} does not exist", resource="credentials_file"
        ) from None
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        # Never echo the key material: name the problem only.
        raise AuthenticationError(
            f"the service-account key is not valid ({type(exc).__name__}); check the JSON key file",
            resource="credentials",
        ) from None
    except auth_exc.DefaultCredentialsError:
        raise AuthenticationError(
            "no application default credentials found; run `gcloud auth application-default login`, "
            "set GOOGLE_APPLICATION_CREDENTIALS, or pass credentials_file/oauth_token",
            resource="credentials",
        ) from None
    if config.impersonate_service_account:
        impersonated_credentials: Any = importlib.import_module("google.auth.impersonated_credentials")
        credentials = impersonated_credentials.Credentials(
            source_credentials=credentials,
            target_principal=config.impersonate_service_account,
            target_scopes=config.scopes,
            delegates=config.impersonation_delegates or None,
        )
    return credentials, project


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
    credentials, implied_project = bigquery_credentials(config)
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
