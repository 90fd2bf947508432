"""The ``azure_data_factory`` connector's configuration, credentials and error translation.

The credential options are Azure's shared ones (:class:`sygnify.clouds.azure.AzureCredentials`:
``auth``, ``tenant_id``, ``client_id``, ``client_secret``, ``certificate_path``...). The
configuration also checks that the ARM endpoint is https (plain http only for a loopback
test server):

    >>> AzureDataFactoryConfig(subscription_id="s", resource_group="rg", factory_name="f",
    ...                        base_url="http://127.0.0.1:8080").insecure_loopback
    True
    >>> is_loopback("localhost"), is_loopback("10.0.0.1")
    (True, False)
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from sygnify.clouds.azure import AzureCredentials, azure_token_credential, translate_azure_error
from sygnify.config import ConnectorConfig
from sygnify.errors import QueryError, SygnifyError

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


class AzureDataFactoryConfig(ConnectorConfig, AzureCredentials):
    """Options of the ``azure_data_factory`` connector (secrets masked in repr and errors)."""

    subscription_id: str
    resource_group: str
    factory_name: str
    base_url: str | None = Field(None, description="ARM endpoint (default: the public cloud's).")
    poll_interval: float = Field(5.0, gt=0, description="First wait between status polls, seconds.")
    max_poll_interval: float = Field(60.0, gt=0)
    poll_backoff: float = Field(1.5, ge=1.0, description="Each wait is the previous times this.")
    timeout: float = Field(3600.0, gt=0, description="Default limit for wait(), seconds.")

    @model_validator(mode="after")
    def _check_base_url(self) -> AzureDataFactoryConfig:
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
    """The azure-identity credential for ``config.auth`` (Azure's one credential builder)."""
    return azure_token_credential(config)


def _refine_adf(exc: BaseException, message: str, resource: str | None) -> SygnifyError | None:
    # ARM answers 400 to a pipeline run it cannot start as asked (a bad or missing parameter).
    if getattr(exc, "status_code", None) == 400:
        return QueryError(message, resource=resource)
    return None


def translate_adf_error(exc: Exception, message: str, resource: str | None) -> SygnifyError:
    """The sygnify error for an azure-core exception; ``message`` is already scrubbed of secrets."""
    return translate_azure_error(exc, message, resource, refine=_refine_adf) or SygnifyError(
        message, resource=resource
    )
