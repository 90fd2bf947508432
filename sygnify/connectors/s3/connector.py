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

import concurrent.futures
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import botocore.exceptions
import pyarrow.fs as pafs

from sygnify.connectors._objectstore.data_reads import arrow_s3_retry_strategy, polars_retry_options
from sygnify.connectors._objectstore.datasets import ObjectStoreConnector
from sygnify.connectors._objectstore.store import (
    BucketExistsError,
    BucketNotFoundError,
    ObjectInfo,
    ObjectNotFoundError,
)
from sygnify.connectors.s3.config import S3Clients, S3Config, open_s3_clients
from sygnify.connectors.s3.errors import bodiless_forbidden, error_code, translate_s3_error
from sygnify.errors import AuthenticationError, ConfigurationError, PermissionDeniedError, SygnifyError

# Configuration, credentials and client construction, and error translation live in private
# modules; the public names are re-exported here, where users import them from.
__all__ = ["BucketNotFoundError", "ObjectInfo", "ObjectNotFoundError", "S3Config", "S3Connector"]


class S3Connector(ObjectStoreConnector[S3Config]):
    """AWS S3 / S3-compatible object storage (see the module docstring)."""

    type_name = "s3"
    config_model = S3Config
    schemes = ("s3", "s3a")

    @property
    def default_bucket(self) -> str | None:
        return self.config.bucket

    # -- clients ----------------------------------------------------------------------------

    def _open_clients(self) -> S3Clients:
        return open_s3_clients(self.config)

    def _close_clients(self, clients: S3Clients) -> None:
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
        clients: S3Clients = self._clients
        access_key, secret_key, token = self._frozen_credentials()
        key = (access_key, secret_key, token)
        with clients.lock:
            if clients.arrow_fs is None or clients.arrow_key != key:
                endpoint = self.config.endpoint_url
                options: dict[str, Any] = {
                    "region": clients.region,
                    "connect_timeout": self.config.connect_timeout,
                    "request_timeout": self.config.read_timeout,
                    # One attempt per request: sygnify's policy retries the read around it.
                    "retry_strategy": arrow_s3_retry_strategy(),
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
        # Polars retries on its own when a frame is collected: bounded by the connection's policy.
        storage: dict[str, Any] = {
            "aws_region": self._clients.region,
            **polars_retry_options(self.retry_policy),
        }
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
            if error_code(exc) in ("404", "NotFound"):
                self._require_bucket(bucket)
                raise ObjectNotFoundError(
                    f"no object {self.url(bucket, key)}", resource=self.url(bucket, key)
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
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
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
        resource = self.url(bucket, key)
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
            if error_code(exc) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise BucketExistsError(f"bucket {bucket!r} exists", resource=bucket) from exc
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
        error = translate_s3_error(exc, message, resource) or self._translate_fallback(exc, message, resource)
        if (
            isinstance(error, PermissionDeniedError)
            and bodiless_forbidden(exc)
            and self._credentials_rejected()
        ):
            return AuthenticationError(
                f"{message} (check the access key, secret and token)", resource=resource
            )
        return error

    def _credentials_rejected(self) -> bool:
        """Whether S3 rejects these credentials outright (not merely denies one request).

        A HEAD answer has no body, so its 403 does not say whether the signature or the
        permission failed. One ``ListBuckets`` (whose errors have a body) tells: S3 checks
        the credentials before any permission, so wrong keys answer with an authentication
        code whatever the policy allows.
        """
        try:
            self._s3.list_buckets()
        except botocore.exceptions.ClientError as probe:
            return isinstance(translate_s3_error(probe, "", None), AuthenticationError)
        except Exception:  # the probe only refines the answer; the original error stands
            return False
        return False

    # -- server-side copies, presigned URLs ------------------------------------------------------

    def _copy_object(self, source: ObjectInfo, bucket: str, key: str) -> None:
        resource = self.url(bucket, key)
        copy_source = {"Bucket": source.bucket, "Key": source.key}
        if source.size <= self.single_copy_limit:
            self._call(
                "copy",
                self._s3.copy_object,
                Bucket=bucket,
                Key=key,
                CopySource=copy_source,
                resource=resource,
            )
            return
        # Beyond CopyObject's 5 GiB: a multipart upload whose parts are ranges copied on the server.
        part_size = max(self.config.part_size, -(-source.size // 10_000))
        created = self._call(
            "copy",
            self._s3.create_multipart_upload,
            Bucket=bucket,
            Key=key,
            resource=resource,
            **_object_args(source.content_type, source.metadata),
        )
        upload_id = created["UploadId"]

        def copy_part(number: int) -> dict[str, Any]:
            start = (number - 1) * part_size
            end = min(start + part_size, source.size) - 1
            response = self._call(
                "copy part",
                self._s3.upload_part_copy,
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=copy_source,
                CopySourceRange=f"bytes={start}-{end}",
                resource=f"{resource} (part {number})",
            )
            return {"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]}

        numbers = range(1, -(-source.size // part_size) + 1)
        try:
            with concurrent.futures.ThreadPoolExecutor(
                self.config.max_concurrency, thread_name_prefix="sygnify-copy"
            ) as workers:
                parts = list(workers.map(copy_part, numbers))
            self._call(
                "copy",
                self._s3.complete_multipart_upload,
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                resource=resource,
            )
        except BaseException:
            with contextlib.suppress(Exception):  # no billable orphan parts; the error is what matters
                self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    def _presign(self, bucket: str, key: str, seconds: int, method: str) -> str:
        if self.config.anonymous:
            raise ConfigurationError(
                "an anonymous s3 connection cannot sign URLs; connect with credentials to presign",
                resource=self.url(bucket, key),
            )
        self._frozen_credentials()  # no credentials: an AuthenticationError saying where to set them
        operation = "get_object" if method == "GET" else "put_object"
        url: str = self._s3.generate_presigned_url(
            operation, Params={"Bucket": bucket, "Key": key}, ExpiresIn=seconds, HttpMethod=method
        )
        return url


def _object_args(content_type: str | None, metadata: Mapping[str, str] | None) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if content_type:
        args["ContentType"] = content_type
    if metadata:
        args["Metadata"] = dict(metadata)
    return args
