"""The ``azure_data_factory`` connector's configuration, credentials and error translation.

The configuration checks that each ``auth`` kind has what it needs and that the ARM endpoint
is https (plain http only for a loopback test server):

    >>> AzureDataFactoryConfig(subscription_id="s", resource_group="rg", factory_name="f",
    ...                        base_url="http://127.0.0.1:8080").insecure_loopback
    True
    >>> is_loopback("localhost"), is_loopback("10.0.0.1")
    (True, False)
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from sygnify.config import ConnectorConfig
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    QueryError,
    SygnifyError,
    ThrottledError,
)

__all__ = ["AzureDataFactoryConfig", "build_credential", "is_loopback", "translate_adf_error"]

_LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host is None:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AzureDataFactoryConfig(ConnectorConfig):
    """Options of the ``azure_data_factory`` connector (secrets masked in repr and errors)."""

    subscription_id: str
    resource_group: str
    factory_name: str
    auth: Literal["default", "service_principal_secret", "service_principal_certificate"] = "default"
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    certificate_path: Path | None = None
    certificate_password: SecretStr | None = None
    base_url: str | None = Field(None, description="ARM endpoint (default: the public cloud's).")
    poll_interval: float = Field(5.0, gt=0, description="First wait between status polls, seconds.")
    max_poll_interval: float = Field(60.0, gt=0)
    poll_backoff: float = Field(1.5, ge=1.0, description="Each wait is the previous times this.")
    timeout: float = Field(3600.0, gt=0, description="Default limit for wait(), seconds.")

    @model_validator(mode="after")
    def _check(self) -> AzureDataFactoryConfig:
        if self.auth == "service_principal_secret" and not (
            self.tenant_id and self.client_id and self.client_secret
        ):
            raise ValueError("auth='service_principal_secret' needs tenant_id, client_id and client_secret")
        if self.auth == "service_principal_certificate" and not (
            self.tenant_id and self.client_id and self.certificate_path
        ):
            raise ValueError(
                "auth='service_principal_certificate' needs tenant_id, client_id and certificate_path"
            )
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError("base_url must be an https:// URL")
            if parts.scheme == "http" and not is_loopback(parts.hostname):
                raise ValueError(
                    "base_url must use https (plain http is allowed only for loopback test servers)"
                )
        return self

    @property
    def insecure_loopback(self) -> bool:
        """True for a plain-http loopback endpoint (a local test server)."""
        return self.base_url is not None and self.base_url.startswith("http://")


def build_credential(config: AzureDataFactoryConfig) -> Any:
    """The azure-identity credential for ``config.auth``."""
    from azure import identity

    if config.auth == "service_principal_secret":
        assert config.tenant_id
        assert config.client_id
        assert config.client_secret
        return identity.ClientSecretCredential(
            config.tenant_id, config.client_id, config.client_secret.get_secret_value()
        )
    if config.auth == "service_principal_certificate":
        assert config.tenant_id
        assert config.client_id
        assert config.certificate_path
        password = config.certificate_password.get_secret_value() if config.certificate_password else None
        return identity.CertificateCredential(
            config.tenant_id,
            config.client_id,
            certificate_path=str(config.certificate_path),
            password=password,
        )
    return identity.DefaultAzureCredential(exclude_interactive_browser_credential=True)


def translate_adf_error(exc: Exception, message: str, resource: str | None) -> SygnifyError:
    """The sygnify error for an azure-core exception; ``message`` is already scrubbed of secrets."""
    from azure.core import exceptions as azure_errors

    if isinstance(exc, azure_errors.ClientAuthenticationError):
        return AuthenticationError(message, resource=resource)
    if isinstance(exc, azure_errors.ResourceNotFoundError):
        return NotFoundError(message, resource=resource)
    if isinstance(exc, azure_errors.ServiceRequestTimeoutError | azure_errors.ServiceResponseTimeoutError):
        return OperationTimeoutError(message, resource=resource)
    if isinstance(exc, azure_errors.ServiceRequestError | azure_errors.ServiceResponseError):
        return ConnectionFailedError(message, resource=resource)
    if isinstance(exc, azure_errors.HttpResponseError):
        status = exc.status_code or 0
        if status == 429 or (status == 503 and exc.response is not None and _retry_after(exc.response)):
            return ThrottledError(message, resource=resource, retry_after=_retry_after(exc.response))
        if status == 403:
            return PermissionDeniedError(message, resource=resource)
        if status == 404:
            return NotFoundError(message, resource=resource)
        if status >= 500 or status == 408:
            return ConnectionFailedError(message, resource=resource)
        if status == 400:
            return QueryError(message, resource=resource)
        return ConfigurationError(message, resource=resource)
    if isinstance(exc, ValueError) and "https" in str(exc).lower():
        return ConfigurationError(message, resource=resource)
    return SygnifyError(message, resource=resource)


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    for header, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0), ("Retry-After", 1.0)):
        value = headers.get(header)
        if value is not None:
            try:
                return float(value) / scale
            except ValueError:
                continue
    return None
