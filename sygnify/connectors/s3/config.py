"""The ``s3`` connector's configuration and the boto3 session and client it builds from it.

The credential options are AWS's shared ones (:class:`sygnify.clouds.aws.AwsCredentials`):
the default AWS chain, explicit keys or a named profile; any of them can then assume
``role_arn`` through STS, with credentials that refresh before they expire. Contradictory
settings are refused when the config is built, and secrets never reach a repr::

    >>> config = S3Config(bucket="lake", access_key_id="AKIAEXAMPLE", secret_access_key="hunter2")
    >>> config.bucket, "hunter2" in repr(config)
    ('lake', False)
    >>> try:
    ...     S3Config(anonymous=True, profile="dev")
    ... except ValueError as exc:
    ...     print(exc.errors()[0]["msg"])
    Value error, anonymous excludes credentials
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import boto3
import pyarrow.fs as pafs
from botocore import UNSIGNED
from pydantic import Field, model_validator
from typing_extensions import Self

from sygnify.clouds.aws import DEFAULT_REGION, AwsCredentials, aws_client, aws_session
from sygnify.connectors._objectstore.store import MiB, ObjectStoreConfig

__all__ = ["S3Clients", "S3Config", "open_s3_clients"]


class S3Config(ObjectStoreConfig, AwsCredentials):
    """Options of the ``s3`` connector (secrets are :class:`~pydantic.SecretStr`)."""

    bucket: str | None = Field(None, description="Default bucket for keys that are not s3:// URLs.")
    anonymous: bool = Field(False, description="Unsigned requests (public buckets).")
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    ca_bundle: Path | None = Field(None, description="CA certificates to trust (TLS stays verified).")
    part_size: int = Field(
        8 * MiB, ge=5 * MiB, le=4000 * MiB, description="Multipart part size (S3: >= 5 MiB)."
    )

    @model_validator(mode="after")
    def _check_anonymous(self) -> Self:
        if self.anonymous and (self.access_key_id or self.profile or self.role_arn):
            raise ValueError("anonymous excludes credentials")
        return self

    @property
    def tls_verify(self) -> bool | str:
        """What botocore takes as ``verify=``: the CA bundle path, else ``verify_tls``."""
        return str(self.ca_bundle) if self.ca_bundle else self.verify_tls


@dataclass
class S3Clients:
    """The pooled boto3 session and S3 client of one configuration, and its cached Arrow filesystem."""

    session: boto3.Session
    s3: Any
    region: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrow_fs: pafs.S3FileSystem | None = None
    arrow_key: tuple[str | None, ...] | None = None


def open_s3_clients(config: S3Config) -> S3Clients:
    """The boto3 session (with ``role_arn`` assumed, if set) and the S3 client for ``config``."""
    session = aws_session(config, verify=config.tls_verify)
    region = config.region or session.region_name or DEFAULT_REGION
    client = aws_client(
        session,
        "s3",
        config,
        region=region,
        verify=config.tls_verify,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        max_pool_connections=max(10, 2 * config.max_concurrency),
        s3={"addressing_style": config.addressing_style},
        # SigV4 named explicitly: botocore otherwise presigns URLs with SigV2, which newer
        # regions and most S3-compatible stores refuse and which cannot express X-Amz-Expires.
        signature_version=UNSIGNED if config.anonymous else "s3v4",
    )
    return S3Clients(session=session, s3=client, region=region)
