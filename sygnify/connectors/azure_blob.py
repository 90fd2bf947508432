"""The ``azure_blob`` connector: Azure Blob Storage (and Azurite) over azure-storage-blob and Arrow.

Objects (list, get, put, delete, streamed block upload and ranged download, metadata) go
through the official SDK; datasets (Parquet, CSV, JSON lines, Arrow IPC blobs, prefixes
and globs) are read by pyarrow's Azure filesystem (through the SDK when the credential is a
SAS token, which pyarrow mis-places on path-style endpoints) and Polars' native cloud reader
with the same credentials, and ``query()`` runs DuckDB SQL over the prefixes named in ``tables``.
Install with ``pip install 'sygnify[azure]'``.

Example (needs a storage account or Azurite, so it is not run as a doctest)::

    from sygnify import CloudDataConnector

    with CloudDataConnector() as connector:
        lake = connector.connect(
            "azure_blob", name="lake", account_name="contosodata", container="raw",
            tables={"tx": "tx/*.parquet"},
        )  # DefaultAzureCredential: environment, managed identity, workload identity, CLI
        lake.write(frame, "tx/", partition_by=["region"])
        lake.scan("az://raw/tx/*.parquet").filter(pl.col("amount") > 0).collect()

Credentials, first match wins: ``connection_string``; ``account_key``; ``sas_token``;
a service principal (``tenant_id`` + ``client_id`` + ``client_secret``); else
``DefaultAzureCredential`` (``managed_identity_client_id`` picks a user-assigned identity).
``account_url`` points at a custom endpoint (sovereign clouds, Azurite).
"""

from __future__ import annotations

import base64
import contextlib
import os
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import azure.core.exceptions as azure_errors
import pyarrow.fs as pafs
from azure.storage.blob import BlobBlock, BlobServiceClient, ContentSettings
from pydantic import Field, SecretStr, model_validator
from typing_extensions import Self

from sygnify.connectors._object_datasets import ObjectStoreConnector
from sygnify.connectors._object_store import (
    BucketNotFoundError,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectStoreConfig,
    _AlreadyExistsError,
)
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    PermissionDeniedError,
    SygnifyError,
    ThrottledError,
    TransientError,
)

__all__ = [
    "AzureBlobConfig",
    "AzureBlobConnector",
    "BucketNotFoundError",
    "ObjectInfo",
    "ObjectNotFoundError",
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
class _Account:
    name: str
    url: str  # blob endpoint, no trailing slash
    key: str | None
    sas: str | None


@dataclass
class _AzureClients:
    service: BlobServiceClient
    account: _Account
    credential: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrow_fs: pafs.AzureFileSystem | None = None


def _parse_connection_string(text: str) -> dict[str, str]:
    parts = (item.split("=", 1) for item in text.split(";") if "=" in item)
    return {key.strip().lower(): value.strip() for key, value in parts}


class AzureBlobConnector(ObjectStoreConnector[AzureBlobConfig]):
    """Azure Blob Storage (see the module docstring)."""

    type_name = "azure_blob"
    config_model = AzureBlobConfig
    schemes = ("az", "azure", "abfs")

    @property
    def default_bucket(self) -> str | None:
        return self.config.container

    # -- clients ----------------------------------------------------------------------------

    def _account(self) -> _Account:
        config = self.config
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
        return _Account(name=name, url=url.rstrip("/"), key=key, sas=sas)

    def _credential(self, account: _Account) -> Any:
        config = self.config
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

    def _open_clients(self) -> _AzureClients:
        account = self._account()
        credential = self._credential(account)
        service = BlobServiceClient(
            account_url=account.url,
            credential=credential,
            # sygnify's retry policy is the only one, so retries are counted and bounded once.
            retry_total=0,
            connection_timeout=self.config.connect_timeout,
            read_timeout=self.config.read_timeout,
            connection_verify=self.config.verify_tls,
            max_single_put_size=self.config.part_size,
            max_block_size=self.config.part_size,
        )
        return _AzureClients(service=service, account=account, credential=credential)

    def _close_clients(self, clients: _AzureClients) -> None:
        clients.service.close()
        close = getattr(clients.credential, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()

    @property
    def _service(self) -> BlobServiceClient:
        service: BlobServiceClient = self._clients.service
        return service

    def _arrow_filesystem(self) -> pafs.FileSystem:
        clients: _AzureClients = self._clients
        if clients.account.key is None and clients.account.sas is not None:
            # pyarrow's AzureFileSystem appends the SAS token to the endpoint before the
            # account name on path-style endpoints (Azurite, some private endpoints), so every
            # request names a bogus resource. The SDK builds SAS URLs correctly for every
            # endpoint style: read through it (ranged GETs) so SAS works, and is tested, everywhere.
            return self._sdk_filesystem()
        with clients.lock:
            if clients.arrow_fs is None:
                account = clients.account
                parsed = urllib.parse.urlsplit(account.url)
                options: dict[str, Any] = {}
                if not parsed.hostname or not parsed.hostname.startswith(f"{account.name}."):
                    # A custom endpoint (Azurite, private link): path-style host[:port].
                    options.update(blob_storage_authority=parsed.netloc, dfs_storage_authority=parsed.netloc)
                if parsed.scheme == "http":
                    options.update(blob_storage_scheme="http", dfs_storage_scheme="http")
                if account.key is not None:
                    options["account_key"] = account.key
                elif self.config.client_secret is not None:
                    options.update(
                        tenant_id=self.config.tenant_id,
                        client_id=self.config.client_id,
                        client_secret=self.config.client_secret.get_secret_value(),
                    )
                elif self.config.managed_identity_client_id:
                    options["client_id"] = self.config.managed_identity_client_id
                clients.arrow_fs = pafs.AzureFileSystem(account.name, **options)
            return clients.arrow_fs

    def _polars_options(self) -> dict[str, Any]:
        account: _Account = self._clients.account
        storage: dict[str, str] = {"account_name": account.name}
        if not urllib.parse.urlsplit(account.url).hostname or not account.url.startswith(
            f"https://{account.name}.blob.core.windows.net"
        ):
            storage["endpoint"] = account.url
        if account.url.startswith("http://"):
            storage["allow_http"] = "true"
        if not self.config.verify_tls:
            storage["allow_invalid_certificates"] = "true"
        if account.key is not None:
            storage["account_key"] = account.key
            return {"storage_options": storage}
        if account.sas is not None:
            storage["sas_token"] = account.sas
            return {"storage_options": storage}
        if self.config.client_secret is not None:
            storage.update(
                tenant_id=self.config.tenant_id or "",
                client_id=self.config.client_id or "",
                client_secret=self.config.client_secret.get_secret_value(),
            )
            return {"storage_options": storage}
        import polars as pl

        provider = pl.CredentialProviderAzure(credential=self._clients.credential)
        return {"storage_options": storage, "credential_provider": provider}

    # -- object primitives --------------------------------------------------------------------

    def _list_page(self, bucket: str, prefix: str, token: str | None) -> tuple[list[ObjectInfo], str | None]:
        container = self._service.get_container_client(bucket)
        pages = container.list_blobs(
            name_starts_with=prefix or None, results_per_page=self.config.list_page_size
        ).by_page(continuation_token=token)
        page: list[Any] = list(next(pages, iter([])))
        objects = [
            ObjectInfo(
                bucket=bucket,
                key=blob.name,
                size=int(blob.size),
                etag=blob.etag,
                last_modified=blob.last_modified,
                content_type=blob.content_settings.content_type if blob.content_settings else None,
            )
            for blob in page
        ]
        next_token: str | None = getattr(pages, "continuation_token", None)
        return objects, next_token or None

    def _head(self, bucket: str, key: str) -> ObjectInfo:
        properties = self._service.get_blob_client(bucket, key).get_blob_properties()
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(properties.size),
            etag=properties.etag,
            last_modified=properties.last_modified,
            content_type=properties.content_settings.content_type,
            metadata=dict(properties.metadata or {}),
        )

    def _get_range(self, bucket: str, key: str, start: int, length: int | None) -> bytes:
        blob = self._service.get_blob_client(bucket, key)
        downloader = blob.download_blob(offset=start if start or length is not None else None, length=length)
        data: bytes = downloader.readall()
        return data

    def _put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str | None, metadata: Mapping[str, str] | None
    ) -> None:
        self._service.get_blob_client(bucket, key).upload_blob(
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type) if content_type else None,
            metadata=dict(metadata) if metadata else None,
        )

    def _upload_chunks(
        self,
        bucket: str,
        key: str,
        chunks: Iterator[bytes],
        content_type: str | None,
        metadata: Mapping[str, str] | None,
    ) -> None:
        blob = self._service.get_blob_client(bucket, key)
        resource = self._url(bucket, key)
        # Block ids must all have the same length; a random run id keeps concurrent uploads apart.
        run = base64.b16encode(os.urandom(6)).decode()

        def stage(number: int, chunk: bytes) -> str:
            block_id = base64.b64encode(f"{run}-{number:08d}".encode()).decode()
            self._call(
                "upload part", blob.stage_block, block_id, chunk, resource=f"{resource} (block {number})"
            )
            return block_id

        # Uncommitted blocks expire on their own (7 days); nothing to abort on failure.
        block_ids = self._upload_parts(chunks, stage)
        self._call(
            "upload",
            blob.commit_block_list,
            [BlobBlock(block_id=block_id) for block_id in block_ids],
            content_settings=ContentSettings(content_type=content_type) if content_type else None,
            metadata=dict(metadata) if metadata else None,
            resource=resource,
        )

    def _delete_keys(self, bucket: str, keys: Sequence[str]) -> None:
        container = self._service.get_container_client(bucket)
        for key in keys:
            with contextlib.suppress(azure_errors.ResourceNotFoundError):
                try:
                    container.delete_blob(key)
                except azure_errors.ResourceNotFoundError as exc:
                    if _code(exc) == "ContainerNotFound":
                        raise BucketNotFoundError(
                            f"container {bucket!r} does not exist", resource=bucket
                        ) from exc
                    raise

    def _create_bucket(self, bucket: str) -> None:
        try:
            self._service.create_container(bucket)
        except azure_errors.ResourceExistsError as exc:
            raise _AlreadyExistsError(f"container {bucket!r} exists", resource=bucket) from exc

    def _check_health(self) -> str:
        if self.config.container:
            self._service.get_container_client(self.config.container).get_container_properties()
            return f"container {self.config.container!r} reachable"
        self._service.get_account_information()
        return "Azure Blob Storage reachable"

    # -- errors --------------------------------------------------------------------------------

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        message = self._scrub(
            f"azure_blob {operation} failed for {resource!r}: {type(exc).__name__}: {_first_line(exc)}"
        )
        code = _code(exc)
        status = getattr(exc, "status_code", None) or 0
        if code == "ContainerNotFound":
            return BucketNotFoundError(
                f"{message} (create the container or check its name)", resource=resource
            )
        if isinstance(exc, azure_errors.ResourceNotFoundError) or code == "BlobNotFound":
            return ObjectNotFoundError(message, resource=resource)
        # Azurite answers a bad signature with AuthorizationFailure; Azure with AuthenticationFailed.
        if "failed to authenticate" in str(exc).lower():
            return AuthenticationError(f"{message} (check the key, SAS token or identity)", resource=resource)
        if isinstance(exc, azure_errors.ClientAuthenticationError) or code in (
            "AuthenticationFailed",
            "InvalidAuthenticationInfo",
        ):
            if code.startswith("Authorization") or (status == 403 and code != "AuthenticationFailed"):
                return PermissionDeniedError(message, resource=resource)
            return AuthenticationError(f"{message} (check the key, SAS token or identity)", resource=resource)
        if exc.__class__.__name__ == "CredentialUnavailableError":
            return AuthenticationError(
                f"{message} (no Azure identity available: set a key, SAS, service principal or identity)",
                resource=resource,
            )
        if status == 403 or code.startswith("Authorization"):
            return PermissionDeniedError(message, resource=resource)
        if code in ("ServerBusy", "OperationTimedOut", "TooManyRequests") or status in (429, 503):
            retry_after = None
            response = getattr(exc, "response", None)
            if response is not None:
                with contextlib.suppress(TypeError, ValueError):
                    retry_after = float(response.headers.get("Retry-After"))
            return ThrottledError(message, resource=resource, retry_after=retry_after)
        if status >= 500 or code == "InternalError":
            return TransientError(message, resource=resource)
        if isinstance(exc, azure_errors.ServiceRequestError | azure_errors.ServiceResponseError):
            return ConnectionFailedError(message, resource=resource)
        if isinstance(exc, azure_errors.HttpResponseError) and 400 <= status < 500:
            return ConfigurationError(message, resource=resource)
        if isinstance(exc, ValueError) and "credential" in str(exc).lower():
            return ConfigurationError(message, resource=resource)
        return self._translate_fallback(exc, message, resource)


def _code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        code = headers.get("x-ms-error-code")
    return str(code or "")


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
