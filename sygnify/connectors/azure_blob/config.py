"""The ``azure_blob`` connector's configuration and the blob service client it builds from it.

Credentials, first match wins: a connection string, an account key, a SAS token, a service
principal, else ``DefaultAzureCredential``; ``account_url`` names a custom endpoint
(sovereign clouds, Azurite). Contradictory settings are refused when the config is built,
secrets never reach a repr, and the account and endpoint are worked out offline::

    >>> config = AzureBlobConfig(account_name="contosodata", account_key="a2V5", container="raw")
    >>> account = resolve_account(config)
    >>> account.name, account.url, "a2V5" in repr(config)
    ('contosodata', 'https://contosodata.blob.core.windows.net', False)
    >>> azurite = AzureBlobConfig(account_url="http://127.0.0.1:10000/devstoreaccount1/", sas_token="?sig=x")
    >>> account = resolve_account(azurite)
    >>> account.name, account.url, account.sas
    ('devstoreaccount1', 'http://127.0.0.1:10000/devstoreaccount1', 'sig=x')
    >>> try:
    ...     AzureBlobConfig(account_name="contosodata", tenant_id="t", client_secret="s")
    ... except ValueError as exc:
    ...     print(exc.errors()[0]["msg"])
    Value error, a service principal needs tenant_id, client_id and client_secret together
"""

from __future__ import annotations

import contextlib
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs
from azure.storage.blob import BlobServiceClient
from pydantic import Field, SecretStr, model_validator
from typing_extensions import Self

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


class AzureBlobConfig(ObjectStoreConfig):
    """Options of the ``azure_blob`` connector (secrets are :class:`~pydantic.SecretStr`)."""

    container: str | None = Field(None, description="Default container for keys that are not az:// URLs.")
    account_name: str | None = None
    account_url: str | None = Field(
        None, description="Blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1."
    )
    connection_string: SecretStr | None = None
    account_key: SecretStr | None = None
    sas_token: SecretStr | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    managed_identity_client_id: str | None = None

    @model_validator(mode="after")
    def _check_auth(self) -> Self:
        if self.connection_string is None and self.account_name is None and self.account_url is None:
            raise ValueError("set connection_string, account_name or account_url")
        principal = (self.tenant_id, self.client_id, self.client_secret)
        partial = any(part is not None for part in principal) and not all(
            part is not None for part in principal
        )
        # client_id alone is fine: it picks a user-assigned managed identity for DefaultAzureCredential.
        if partial and (
            self.client_id is None or self.client_secret is not None or self.tenant_id is not None
        ):
            raise ValueError("a service principal needs tenant_id, client_id and client_secret together")
        return self


@dataclass(frozen=True)
class AzureAccount:
    """The storage account a configuration names, its blob endpoint and any shared key or SAS."""

    name: str
    url: str  # blob endpoint, no trailing slash
    key: str | None
    sas: str | None


@dataclass
class AzureClients:
    """The pooled blob service client of one configuration, its credential and cached Arrow filesystem."""

    service: BlobServiceClient
    account: AzureAccount
    credential: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrow_fs: pafs.AzureFileSystem | None = None


def _parse_connection_string(text: str) -> dict[str, str]:
    parts = (item.split("=", 1) for item in text.split(";") if "=" in item)
    return {key.strip().lower(): value.strip() for key, value in parts}


def resolve_account(config: AzureBlobConfig) -> AzureAccount:
    """The account name, blob endpoint, key and SAS of ``config``.

    Explicit options win over the connection string's values.
    """
    key = config.account_key.get_secret_value() if config.account_key else None
    sas = config.sas_token.get_secret_value().lstrip("?") if config.sas_token else None
    name, url = config.account_name, config.account_url
    if config.connection_string is not None:
        values = _parse_connection_string(config.connection_string.get_secret_value())
        name = name or values.get("accountname")
        key = key or values.get("accountkey")
        sas = sas or values.get("sharedaccesssignature")
        url = url or values.get("blobendpoint")
        if url is None and name:
            protocol = values.get("defaultendpointsprotocol", "https")
            suffix = values.get("endpointsuffix", "core.windows.net")
            url = f"{protocol}://{name}.blob.{suffix}"
    if url is None and name:
        url = f"https://{name}.blob.core.windows.net"
    if url is None:
        raise ConfigurationError("cannot tell the blob endpoint; set account_name or account_url")
    if name is None:
        parsed = urllib.parse.urlsplit(url)
        host_name = parsed.hostname.split(".")[0] if parsed.hostname else ""
        path_name = parsed.path.strip("/").split("/")[0]
        name = path_name if parsed.hostname in ("127.0.0.1", "localhost") and path_name else host_name
    return AzureAccount(name=name, url=url.rstrip("/"), key=key, sas=sas)


def azure_credential(config: AzureBlobConfig, account: AzureAccount) -> Any:
    """The SDK credential: shared key, SAS, service principal, else ``DefaultAzureCredential``."""
    if account.key is not None:
        return {"account_name": account.name, "account_key": account.key}
    if account.sas is not None:
        return account.sas
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    if config.client_secret is not None and config.tenant_id and config.client_id:
        return ClientSecretCredential(
            config.tenant_id, config.client_id, config.client_secret.get_secret_value()
        )
    return DefaultAzureCredential(managed_identity_client_id=config.managed_identity_client_id)


def open_azure_clients(config: AzureBlobConfig) -> AzureClients:
    """The blob service client for ``config``, with its account and credential."""
    account = resolve_account(config)
    credential = azure_credential(config, account)
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
