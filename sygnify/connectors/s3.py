"""The ``s3`` connector: AWS S3 and S3-compatible stores (MinIO, Ceph, moto) over boto3 and Arrow.

Objects (list, get, put, delete, streamed multipart upload and ranged download, metadata)
go through boto3; datasets (Parquet, CSV, JSON lines, Arrow IPC objects, prefixes and
globs) are read by pyarrow's S3 filesystem and Polars' native cloud reader with the same
credentials, and ``query()`` runs DuckDB SQL over the prefixes named in ``tables``.
Install with ``pip install 'sygnify[s3]'``.

Example (needs a reachable S3 endpoint, so it is not run as a doctest)::

    from sygnify import CloudDataConnector

    with CloudDataConnector() as connector:
        lake = connector.connect(
            "s3", name="lake", bucket="analytics", region="eu-west-1",
            tables={"tx": "tx/*.parquet"},
        )
        lake.write(frame, "tx/", partition_by=["region"])
        lake.query("SELECT region, sum(amount) FROM tx WHERE amount > ? GROUP BY 1", [100])
        lake.scan("s3://analytics/tx/*.parquet").filter(pl.col("amount") > 0).collect()

Credentials: the default AWS chain (environment, shared config, SSO, instance/container
roles), or ``access_key_id``/``secret_access_key`` (+``session_token``), or a named
``profile``; any of them can then assume ``role_arn``. ``endpoint_url`` points at an
S3-compatible service.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.session
import pyarrow.fs as pafs
from botocore import UNSIGNED
from botocore.config import Config as BotoConfig
from pydantic import Field, SecretStr, model_validator
from typing_extensions import Self

from sygnify.connectors._object_datasets import ObjectStoreConnector
from sygnify.connectors._object_store import (
    BucketNotFoundError,
    MiB,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectStoreConfig,
    _AlreadyExistsError,
)
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    OperationTimeoutError,
    PermissionDeniedError,
    SygnifyError,
    ThrottledError,
    TransientError,
)

__all__ = ["BucketNotFoundError", "ObjectInfo", "ObjectNotFoundError", "S3Config", "S3Connector"]

_AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "InvalidClientTokenId",
        "TokenRefreshRequired",
        "AuthFailure",
        "UnrecognizedClientException",
    }
)
_THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "ServiceUnavailable",
        "503",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload", "NoSuchVersion"})
_BAD_INPUT_CODES = frozenset(
    {
        "InvalidBucketName",
        "InvalidArgument",
        "InvalidRange",
        "EntityTooSmall",
        "InvalidPart",
        "KeyTooLongError",
    }
)


class S3Config(ObjectStoreConfig):
    """Options of the ``s3`` connector (secrets are :class:`~pydantic.SecretStr`)."""

    bucket: str | None = Field(None, description="Default bucket for keys that are not s3:// URLs.")
    region: str | None = Field(None, description="AWS region (default: from the AWS config chain).")
    endpoint_url: str | None = Field(None, description="Custom endpoint (MinIO, S3-compatible, emulator).")
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    profile: str | None = Field(None, description="Named profile of the shared AWS config files.")
    role_arn: str | None = Field(None, description="Role to assume with the base credentials.")
    role_session_name: str = "sygnify"
    external_id: SecretStr | None = None
    role_duration_s: int = Field(3600, ge=900, le=43200)
    sts_endpoint_url: str | None = Field(None, description="STS endpoint for role_arn (default: AWS's).")
    anonymous: bool = Field(False, description="Unsigned requests (public buckets).")
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    ca_bundle: Path | None = Field(None, description="CA certificates to trust (TLS stays verified).")
    part_size: int = Field(
        8 * MiB, ge=5 * MiB, le=4000 * MiB, description="Multipart part size (S3: >= 5 MiB)."
    )

    @model_validator(mode="after")
    def _check_auth(self) -> Self:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        if self.profile is not None and self.access_key_id is not None:
            raise ValueError("use either profile or access keys, not both")
        if self.anonymous and (self.access_key_id or self.profile or self.role_arn):
            raise ValueError("anonymous excludes credentials")
        return self


@dataclass
class _S3Clients:
    session: boto3.Session
    s3: Any
    region: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrow_fs: pafs.S3FileSystem | None = None
    arrow_key: tuple[str | None, ...] | None = None


def _assume_role(base: boto3.Session, config: S3Config, region: str) -> boto3.Session:
    """A session whose credentials come from STS AssumeRole and refresh before they expire."""
    sts = base.client(
        "sts",
        region_name=region,
        endpoint_url=config.sts_endpoint_url,
        verify=str(config.ca_bundle) if config.ca_bundle else config.verify_tls,
    )
    extra: dict[str, Any] = {}
    if config.external_id is not None:
        extra["ExternalId"] = config.external_id.get_secret_value()

    def fetch() -> dict[str, str]:
        response = sts.assume_role(
            RoleArn=config.role_arn,
            RoleSessionName=config.role_session_name,
            DurationSeconds=config.role_duration_s,
            **extra,
        )
        credentials = response["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    refreshable = botocore.credentials.DeferredRefreshableCredentials(
        refresh_using=fetch, method="sts-assume-role"
    )
    core = botocore.session.Session()
    core._credentials = refreshable  # botocore's documented way to inject refreshable credentials
    return boto3.Session(botocore_session=core, region_name=region)


class S3Connector(ObjectStoreConnector[S3Config]):
    """AWS S3 / S3-compatible object storage (see the module docstring)."""

    type_name = "s3"
    config_model = S3Config
    schemes = ("s3", "s3a")

    @property
    def default_bucket(self) -> str | None:
        return self.config.bucket

    # -- clients ----------------------------------------------------------------------------

    def _open_clients(self) -> _S3Clients:
        config = self.config
        try:
            base = boto3.Session(
                profile_name=config.profile,
                aws_access_key_id=config.access_key_id,
                aws_secret_access_key=(
                    config.secret_access_key.get_secret_value() if config.secret_access_key else None
                ),
                aws_session_token=config.session_token.get_secret_value() if config.session_token else None,
                region_name=config.region,
            )
        except botocore.exceptions.ProfileNotFound as exc:
            raise ConfigurationError(
                f"AWS profile {config.profile!r} is not in the shared config files", resource=config.profile
            ) from exc
        region = config.region or base.region_name or "us-east-1"
        session = _assume_role(base, config, region) if config.role_arn else base
        boto_config = BotoConfig(
            region_name=region,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            # sygnify's retry policy is the only one, so retries are counted and bounded once.
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max(10, 2 * config.max_concurrency),
            s3={"addressing_style": config.addressing_style},
            signature_version=UNSIGNED if config.anonymous else None,
        )
        client = session.client(
            "s3",
            endpoint_url=config.endpoint_url,
            verify=str(config.ca_bundle) if config.ca_bundle else config.verify_tls,
            config=boto_config,
        )
        return _S3Clients(session=session, s3=client, region=region)

    def _close_clients(self, clients: _S3Clients) -> None:
        clients.s3.close()

    @property
    def _s3(self) -> Any:
        return self._clients.s3

    def _frozen_credentials(self) -> tuple[str | None, str | None, str | None]:
        if self.config.anonymous:
            return None, None, None
        credentials = self._clients.session.get_credentials()
        if credentials is None:
            raise AuthenticationError(
                "no AWS credentials found (environment, shared config, profile or instance role); "
                "pass access_key_id/secret_access_key, a profile, or anonymous=True for public data",
                resource=self.name,
            )
        frozen = credentials.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token

    def _arrow_filesystem(self) -> pafs.FileSystem:
        clients: _S3Clients = self._clients
        access_key, secret_key, token = self._frozen_credentials()
        key = (access_key, secret_key, token)
        with clients.lock:
            if clients.arrow_fs is None or clients.arrow_key != key:
                endpoint = self.config.endpoint_url
                options: dict[str, Any] = {
                    "region": clients.region,
                    "connect_timeout": self.config.connect_timeout,
                    "request_timeout": self.config.read_timeout,
                }
                if self.config.anonymous:
                    options["anonymous"] = True
                else:
                    options.update(access_key=access_key, secret_key=secret_key, session_token=token)
                if endpoint:
                    scheme, _, host = endpoint.partition("://")
                    options.update(endpoint_override=host or endpoint, scheme=scheme if host else "https")
                if self.config.addressing_style == "virtual":
                    options["force_virtual_addressing"] = True
                if self.config.ca_bundle is not None:
                    options["tls_ca_file_path"] = str(self.config.ca_bundle)
                clients.arrow_fs = pafs.S3FileSystem(**options)
                clients.arrow_key = key
            return clients.arrow_fs

    def _polars_options(self) -> dict[str, Any]:
        storage: dict[str, str] = {"aws_region": self._clients.region}
        endpoint = self.config.endpoint_url
        if endpoint:
            storage["aws_endpoint_url"] = endpoint
            if endpoint.startswith("http://"):
                storage["aws_allow_http"] = "true"
        if self.config.addressing_style == "virtual":
            storage["aws_virtual_hosted_style_request"] = "true"
        if not self.config.verify_tls:
            storage["allow_invalid_certificates"] = "true"
        if self.config.anonymous:
            storage["aws_skip_signature"] = "true"
            return {"storage_options": storage}
        return {"storage_options": storage, "credential_provider": self._polars_credentials}

    def _polars_credentials(self) -> tuple[dict[str, str], int | None]:
        # Called by Polars whenever it needs credentials: refreshable ones stay fresh.
        access_key, secret_key, token = self._frozen_credentials()
        credentials = {"aws_access_key_id": access_key or "", "aws_secret_access_key": secret_key or ""}
        if token:
            credentials["aws_session_token"] = token
        return credentials, None

    # -- object primitives --------------------------------------------------------------------

    def _list_page(self, bucket: str, prefix: str, token: str | None) -> tuple[list[ObjectInfo], str | None]:
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": self.config.list_page_size}
        if token is not None:
            request["ContinuationToken"] = token
        response = self._s3.list_objects_v2(**request)
        objects = [
            ObjectInfo(
                bucket=bucket,
                key=item["Key"],
                size=int(item["Size"]),
                etag=item.get("ETag"),
                last_modified=item.get("LastModified"),
            )
            for item in response.get("Contents", [])
        ]
        next_token = response.get("NextContinuationToken") if response.get("IsTruncated") else None
        return objects, next_token

    def _head(self, bucket: str, key: str) -> ObjectInfo:
        try:
            response = self._s3.head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            # HEAD has no body, so a 404 does not say whether the bucket or the key is missing.
            if _code(exc) in ("404", "NotFound"):
                self._require_bucket(bucket)
                raise ObjectNotFoundError(
                    f"no object {self._url(bucket, key)}", resource=self._url(bucket, key)
                ) from exc
            raise
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(response["ContentLength"]),
            etag=response.get("ETag"),
            last_modified=response.get("LastModified"),
            content_type=response.get("ContentType"),
            metadata=dict(response.get("Metadata", {})),
        )

    def _require_bucket(self, bucket: str) -> None:
        try:
            self._s3.head_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise BucketNotFoundError(
                    f"bucket {bucket!r} does not exist (create it or check its name)", resource=bucket
                ) from exc
            raise

    def _get_range(self, bucket: str, key: str, start: int, length: int | None) -> bytes:
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            request["Range"] = f"bytes={start}-{end}"
        response = self._s3.get_object(**request)
        with contextlib.closing(response["Body"]) as body:
            data: bytes = body.read()
        return data

    def _put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str | None, metadata: Mapping[str, str] | None
    ) -> None:
        self._s3.put_object(Bucket=bucket, Key=key, Body=data, **_object_args(content_type, metadata))

    def _upload_chunks(
        self,
        bucket: str,
        key: str,
        chunks: Iterator[bytes],
        content_type: str | None,
        metadata: Mapping[str, str] | None,
    ) -> None:
        resource = self._url(bucket, key)
        created = self._call(
            "upload",
            self._s3.create_multipart_upload,
            Bucket=bucket,
            Key=key,
            resource=resource,
            **_object_args(content_type, metadata),
        )
        upload_id = created["UploadId"]

        def upload_part(number: int, chunk: bytes) -> dict[str, Any]:
            response = self._call(
                "upload part",
                self._s3.upload_part,
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=chunk,
                resource=f"{resource} (part {number})",
            )
            return {"PartNumber": number, "ETag": response["ETag"]}

        try:
            parts = self._upload_parts(chunks, upload_part)
            self._call(
                "upload",
                self._s3.complete_multipart_upload,
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                resource=resource,
            )
        except BaseException:
            # Leave no billable orphan parts behind; the original error is what matters.
            with contextlib.suppress(Exception):
                self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    def _delete_keys(self, bucket: str, keys: Sequence[str]) -> None:
        response = self._s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
        )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": first.get("Code", ""), "Message": first.get("Message", "")}},
                "DeleteObjects",
            )

    def _create_bucket(self, bucket: str) -> None:
        request: dict[str, Any] = {"Bucket": bucket}
        region = self._clients.region
        if region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._s3.create_bucket(**request)
        except botocore.exceptions.ClientError as exc:
            if _code(exc) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise _AlreadyExistsError(f"bucket {bucket!r} exists", resource=bucket) from exc
            raise

    def _check_health(self) -> str:
        if self.config.bucket:
            self._require_bucket(self.config.bucket)
            return f"bucket {self.config.bucket!r} reachable"
        self._s3.list_buckets()
        return "S3 reachable"

    # -- errors --------------------------------------------------------------------------------

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        message = self._scrub(f"s3 {operation} failed for {resource!r}: {type(exc).__name__}: {exc}")
        if isinstance(exc, botocore.exceptions.ClientError):
            return _translate_client_error(exc, message, resource)
        if isinstance(
            exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
        ):
            return AuthenticationError(
                f"{message} (configure the AWS credential chain, or pass keys or a profile)",
                resource=resource,
            )
        if isinstance(exc, botocore.exceptions.ProfileNotFound):
            return ConfigurationError(message, resource=resource)
        if isinstance(exc, botocore.exceptions.SSLError):
            return ConfigurationError(
                f"{message} (TLS verification failed: trust the server's CA with ca_bundle)",
                resource=resource,
            )
        if isinstance(exc, botocore.exceptions.ReadTimeoutError | botocore.exceptions.ConnectTimeoutError):
            return OperationTimeoutError(message, resource=resource)
        if isinstance(
            exc,
            botocore.exceptions.HTTPClientError
            | botocore.exceptions.ResponseStreamingError
            | botocore.exceptions.IncompleteReadError,
        ):
            return ConnectionFailedError(message, resource=resource)
        if isinstance(exc, botocore.exceptions.ParamValidationError):
            return ConfigurationError(message, resource=resource)
        return self._translate_fallback(exc, message, resource)


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _retry_after(exc: botocore.exceptions.ClientError) -> float | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        with contextlib.suppress(TypeError, ValueError):
            from email.utils import parsedate_to_datetime

            return max(0.0, (parsedate_to_datetime(raw) - datetime.now(timezone.utc)).total_seconds())
    return None


def _translate_client_error(
    exc: botocore.exceptions.ClientError, message: str, resource: str | None
) -> SygnifyError:
    code = _code(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code == "NoSuchBucket":
        return BucketNotFoundError(f"{message} (create the bucket or check its name)", resource=resource)
    if code in _NOT_FOUND_CODES:
        return ObjectNotFoundError(message, resource=resource)
    if code in _AUTH_CODES or status == 401:
        return AuthenticationError(f"{message} (check the access key, secret and token)", resource=resource)
    if code in ("AccessDenied", "AllAccessDisabled", "AccessDeniedException", "403") or status == 403:
        return PermissionDeniedError(
            f"{message} (the credentials are valid but not allowed to do this)", resource=resource
        )
    if code in _THROTTLE_CODES or status in (429, 503):
        return ThrottledError(message, resource=resource, retry_after=_retry_after(exc))
    if status >= 500 or code in ("InternalError", "RequestTimeout", "RequestTimeTooSkewed"):
        return TransientError(message, resource=resource)
    if code in _BAD_INPUT_CODES or status == 400:
        return ConfigurationError(message, resource=resource)
    return SygnifyError(message, resource=resource)


def _object_args(content_type: str | None, metadata: Mapping[str, str] | None) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if content_type:
        args["ContentType"] = content_type
    if metadata:
        args["Metadata"] = dict(metadata)
    return args
