"""The ``s3`` connector's configuration and the boto3 session and client it builds from it.

Credentials come from the default AWS chain, explicit keys or a named profile; any of them
can then assume ``role_arn`` through STS, with credentials that refresh before they expire.
Contradictory settings are refused when the config is built, and secrets never reach a
repr::

    >>> config = S3Config(bucket="lake", access_key_id="AKIAEXAMPLE", secret_access_key="hunter2")
    >>> config.bucket, "hunter2" in repr(config)
    ('lake', False)
    >>> try:
    ...     S3Config(profile="dev", access_key_id="AKIAEXAMPLE", secret_access_key="hunter2")
    ... except ValueError as exc:
    ...     print(exc.errors()[0]["msg"])
    Value error, use either profile or access keys, not both
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
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

from sygnify.connectors._objectstore.store import MiB, ObjectStoreConfig
from sygnify.errors import ConfigurationError

__all__ = ["S3Clients", "S3Config", "assume_role", "open_s3_clients"]


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
class S3Clients:
    """The pooled boto3 session and S3 client of one configuration, and its cached Arrow filesystem."""

    session: boto3.Session
    s3: Any
    region: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrow_fs: pafs.S3FileSystem | None = None
    arrow_key: tuple[str | None, ...] | None = None


def assume_role(base: boto3.Session, config: S3Config, region: str) -> boto3.Session:
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


def open_s3_clients(config: S3Config) -> S3Clients:
    """The boto3 session (with ``role_arn`` assumed, if set) and the S3 client for ``config``."""
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
    session = assume_role(base, config, region) if config.role_arn else base
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
    return S3Clients(session=session, s3=client, region=region)
