"""The ``azure_blob`` connector's configuration and the blob service client it builds from it.

The credential options are Azure storage's shared ones
(:class:`sygnify.clouds.azure.AzureStorageCredentials`), first match wins: a connection
string, an account key, a SAS token, else an Entra identity (a service principal, a
managed or workload identity, ``DefaultAzureCredential``); ``account_url`` names a custom
endpoint (sovereign clouds, Azurite). Contradictory settings are refused when the config is
built, secrets never reach a repr, and the account and endpoint are worked out offline::

    >>> config = AzureBlobConfig(account_name="contosodata", account_key="a2V5", container="raw")
    >>> account = resolve_account(config)
    >>> account.name, account.url, "a2V5" in repr(config)
    ('contosodata', 'https://contosodata.blob.core.windows.net', False)
    >>> azurite = AzureBlobConfig(account_url="http://127.0.0.1:10000/devstoreaccount1/", sas_token="?sig=x")
    >>> account = resolve_account(azurite)
    >>> account.name, account.url, account.sas
    ('devstoreaccount1', 'http://127.0.0.1:10000/devstoreaccount1', 'sig=x')

Over plain http only a shared key or a SAS can sign requests (Entra tokens need https)::

    >>> try:
    ...     open_azure_clients(AzureBlobConfig(account_url="http://127.0.0.1:10000/devstoreaccount1"))
    ... except ConfigurationError as exc:
    ...     print(type(exc).__name__, "plain http" in exc.message, "set account_key" in exc.message)
    ConfigurationError True True
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from azure.storage.blob import BlobServiceClient
from pydantic import Field

from sygnify.clouds.azure import (
    AzureAccount,
    AzureStorageCredentials,
    azure_storage_credential,
    resolve_storage_account,
)
from sygnify.connectors._objectstore.store import ObjectStoreConfig
from sygnify.errors import ConfigurationError

__all__ = [
    "AzureAccount",
    "AzureBlobConfig",
    "AzureClients",
    "azure_credential",
    "close_azure_clients",
    "open_azure_clients",
    "resolve_account",
]

#: The account and the storage credential of a configuration (their home is ``sygnify.clouds.azure``).
resolve_account = resolve_storage_account
azure_credential = azure_storage_credential


class AzureBlobConfig(ObjectStoreConfig, AzureStorageCredentials):
    """Options of the ``azure_blob`` connector (secrets are :class:`~pydantic.SecretStr`)."""

    container: str | None = Field(None, description="Default container for keys that are not az:// URLs.")


@dataclass
class AzureClients:
    """The pooled blob service client of one configuration and its credential.

    Data reads go through this client too (:class:`ObjectStoreFileSystem`), not pyarrow's
    AzureFileSystem, whose own retries cannot be bounded.
    """

    service: BlobServiceClient
    account: AzureAccount
    credential: Any


def open_azure_clients(config: AzureBlobConfig) -> AzureClients:
    """The blob service client for ``config``, with its account and credential."""
    account = resolve_storage_account(config)
    if account.key is None and account.sas is None and account.url.lower().startswith("http://"):
        # azure-core sends Entra tokens over https only (and says so with a bare ValueError).
        raise ConfigurationError(
            f"{account.url} is plain http, where only a shared key or a SAS can sign requests: set "
            "account_key, sas_token or connection_string (Azurite: its well-known devstoreaccount1 "
            "key), or use an https account_url for an Entra identity",
            resource=account.url,
        )
    credential = azure_storage_credential(config, account)
    service = BlobServiceClient(
        account_url=account.url,
        credential=credential,
        # sygnify's retry policy is the only one, so retries are counted and bounded once.
        retry_total=0,
        connection_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        connection_verify=config.verify_tls,
        max_single_put_size=config.part_size,
        max_block_size=config.part_size,
    )
    return AzureClients(service=service, account=account, credential=credential)


def close_azure_clients(clients: AzureClients) -> None:
    """Close the service client and, if it has one to close, the credential."""
    clients.service.close()
    close = getattr(clients.credential, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()
