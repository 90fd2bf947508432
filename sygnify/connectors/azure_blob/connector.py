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
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import azure.core.exceptions as azure_errors
import pyarrow.fs as pafs
from azure.storage.blob import (
    BlobBlock,
    BlobSasPermissions,
    BlobServiceClient,
    ContentSettings,
    generate_blob_sas,
)

from sygnify.connectors._objectstore.data_reads import polars_retry_options
from sygnify.connectors._objectstore.datasets import ObjectStoreConnector
from sygnify.connectors._objectstore.store import (
    BucketExistsError,
    BucketNotFoundError,
    ObjectInfo,
    ObjectNotFoundError,
)
from sygnify.connectors.azure_blob.config import (
    AzureAccount,
    AzureBlobConfig,
    AzureClients,
    close_azure_clients,
    open_azure_clients,
)
from sygnify.connectors.azure_blob.errors import error_code, first_line, translate_azure_error
from sygnify.errors import ConfigurationError, SygnifyError

# Configuration, credentials and client construction, and error translation live in private
# modules; the public names are re-exported here, where users import them from.
__all__ = [
    "AzureBlobConfig",
    "AzureBlobConnector",
    "BucketNotFoundError",
    "ObjectInfo",
    "ObjectNotFoundError",
]


class AzureBlobConnector(ObjectStoreConnector[AzureBlobConfig]):
    """Azure Blob Storage (see the module docstring)."""

    type_name = "azure_blob"
    config_model = AzureBlobConfig
    schemes = ("az", "azure", "abfs")

    @property
    def default_bucket(self) -> str | None:
        return self.config.container

    # -- clients ----------------------------------------------------------------------------

    def _open_clients(self) -> AzureClients:
        return open_azure_clients(self.config)

    def _close_clients(self, clients: AzureClients) -> None:
        close_azure_clients(clients)

    @property
    def _service(self) -> BlobServiceClient:
        service: BlobServiceClient = self._clients.service
        return service

    def _arrow_filesystem(self) -> pafs.FileSystem:
        # Data reads go through the SDK (ranged GETs, each under the connection's retry policy
        # and breaker; :class:`ObjectStoreFileSystem`), never pyarrow's AzureFileSystem:
        # - its Azure C++ SDK retries every request on its own, with no option to bound it
        #   (a persistent 503 took ~58 s and ~100 requests whatever max_attempts said);
        # - it appends a SAS token before the account name on path-style endpoints (Azurite,
        #   some private endpoints), so every request names a bogus resource;
        # - it takes no certificate, workload-identity or CLI credential.
        return self._sdk_filesystem()

    def _polars_options(self) -> dict[str, Any]:
        account: AzureAccount = self._clients.account
        # Polars retries on its own when a frame is collected: bounded by the connection's policy.
        storage: dict[str, Any] = {"account_name": account.name, **polars_retry_options(self.retry_policy)}
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
        resource = self.url(bucket, key)
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
                    if error_code(exc) == "ContainerNotFound":
                        raise BucketNotFoundError(
                            f"container {bucket!r} does not exist", resource=bucket
                        ) from exc
                    raise

    def _create_bucket(self, bucket: str) -> None:
        try:
            self._service.create_container(bucket)
        except azure_errors.ResourceExistsError as exc:
            raise BucketExistsError(f"container {bucket!r} exists", resource=bucket) from exc

    def _check_health(self) -> str:
        if self.config.container:
            self._service.get_container_client(self.config.container).get_container_properties()
            return f"container {self.config.container!r} reachable"
        self._service.get_account_information()
        return "Azure Blob Storage reachable"

    # -- errors --------------------------------------------------------------------------------

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        message = self._scrub(
            f"azure_blob {operation} failed for {resource!r}: {type(exc).__name__}: {first_line(exc)}"
        )
        return translate_azure_error(exc, message, resource) or self._translate_fallback(
            exc, message, resource
        )

    # -- server-side copies, presigned URLs ------------------------------------------------------

    def _copy_object(self, source: ObjectInfo, bucket: str, key: str) -> None:
        resource = self.url(bucket, key)
        source_url = self._service.get_blob_client(source.bucket, source.key).url
        if self._clients.account.key is not None:
            # Copy Blob reads its source as an anonymous client would: give it a short read SAS.
            source_url = self._presign(source.bucket, source.key, 3600, "GET")
        destination = self._service.get_blob_client(bucket, key)
        started = self._call("copy", destination.start_copy_from_url, source_url, resource=resource)
        status, description, delay = started.get("copy_status"), "", 0.1
        while status == "pending":  # same-account copies usually finish at once; large ones run on
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            copy = self._call("copy", destination.get_blob_properties, resource=resource).copy
            status, description = copy.status, copy.status_description or ""
        if status != "success":
            raise SygnifyError(
                f"azure_blob copy of {self.url(source.bucket, source.key)} to {resource} ended "
                f"{status!r} {description}".rstrip(),
                resource=resource,
            )

    def _presign(self, bucket: str, key: str, seconds: int, method: str) -> str:
        account: AzureAccount = self._clients.account
        now = datetime.now(timezone.utc)
        start, expiry = now - timedelta(minutes=5), now + timedelta(seconds=seconds)  # 5 min: clock skew
        permission = (
            BlobSasPermissions(read=True) if method == "GET" else BlobSasPermissions(create=True, write=True)
        )
        signing: dict[str, Any]
        if account.key is not None:
            signing = {"account_key": account.key}
        elif account.sas is None:
            # An Entra identity signs with a user delegation key (at most 7 days, asked of Azure).
            delegation = self._call(
                "presign",
                self._service.get_user_delegation_key,
                start,
                expiry,
                resource=self.url(bucket, key),
            )
            signing = {"user_delegation_key": delegation}
        else:
            raise ConfigurationError(
                f"cannot sign a URL for {self.url(bucket, key)}: a connection with a SAS token cannot "
                "issue new SAS; connect with an account key (or connection string) or an Entra "
                "identity allowed to get a user delegation key",
                resource=self.url(bucket, key),
            )
        sas = generate_blob_sas(
            account.name, bucket, key, permission=permission, expiry=expiry, start=start, **signing
        )
        blob_url = self._service.get_blob_client(bucket, key).url.split("?", 1)[0]
        return f"{blob_url}?{sas}"
