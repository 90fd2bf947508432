"""Azure: one credentials spec, one way to build the SDK credential, one azure-core error map.

:class:`AzureCredentials` is the Microsoft Entra ID part every Azure plugin shares (the
``azure_data_factory`` orchestrator, the ``azureml`` model backend, the ``azure_blob``
connector); :class:`AzureStorageCredentials` adds what only storage accounts take (a
connection string, an account key, a SAS token). ``auth`` picks the kind of identity; left
out, it follows from the options given (a ``client_secret`` means a service principal, a
``certificate_path`` one with a certificate), else ``DefaultAzureCredential``. Nothing here
imports an Azure SDK until a credential is built::

    >>> AzureCredentials(tenant_id="t", client_id="c", client_secret="s").auth
    'service_principal_secret'
    >>> AzureCredentials().auth, "s3cr3t" in repr(AzureCredentials(client_secret="s3cr3t",
    ...                                                              tenant_id="t", client_id="c"))
    ('default', False)
    >>> try:
    ...     AzureCredentials(tenant_id="t", client_secret="s")
    ... except ValueError as exc:
    ...     print(exc.errors()[0]["msg"].split(") ")[1])
    needs tenant_id, client_id and client_secret

Storage accounts are worked out offline from whichever options name them::

    >>> storage = AzureStorageCredentials(account_name="contosodata", account_key="a2V5")
    >>> account = resolve_storage_account(storage)
    >>> account.name, account.url, account.key
    ('contosodata', 'https://contosodata.blob.core.windows.net', 'a2V5')

:func:`translate_azure_error` maps azure-core / azure-identity exceptions onto
:mod:`sygnify.errors`, honouring ``retry-after-ms``, ``x-ms-retry-after-ms`` and
``Retry-After``; a plugin passes ``refine`` for what only it gives a meaning to::

    >>> from azure.core.exceptions import ResourceNotFoundError, ServiceRequestError
    >>> type(translate_azure_error(ResourceNotFoundError("gone"), "get failed", "az://raw/x")).__name__
    'NotFoundError'
    >>> type(translate_azure_error(ServiceRequestError("refused"), "get failed", None)).__name__
    'ConnectionFailedError'
    >>> translate_azure_error(RuntimeError("boom"), "get failed", None) is None
    True
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from typing_extensions import Self

from sygnify.clouds.base import CloudCredentials, Refine, refined, retry_after
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    SygnifyError,
    ThrottledError,
    TransientError,
)

__all__ = [
    "AzureAccount",
    "AzureAuth",
    "AzureCredentials",
    "AzureStorageCredentials",
    "azure_storage_credential",
    "azure_token_credential",
    "error_code",
    "first_line",
    "infer_azure_auth",
    "resolve_storage_account",
    "translate_azure_error",
]

#: The kinds of Microsoft Entra identity a plugin can authenticate as.
AzureAuth = Literal[
    "default",
    "service_principal_secret",
    "service_principal_certificate",
    "managed_identity",
    "workload_identity",
    "azure_cli",
]


def infer_azure_auth(options: Mapping[str, Any]) -> str | None:
    """The ``auth`` kind the given options imply (``None``: nothing beyond the default)."""
    if options.get("client_secret") is not None:
        return "service_principal_secret"
    if options.get("certificate_path") is not None:
        return "service_principal_certificate"
    return None


class AzureCredentials(CloudCredentials):
    """The Microsoft Entra ID options every Azure plugin accepts (secrets are ``SecretStr``)."""

    auth: AzureAuth = Field(
        "default",
        description="default (DefaultAzureCredential), service_principal_secret, "
        "service_principal_certificate, managed_identity, workload_identity, azure_cli; "
        "left out, it follows from client_secret / certificate_path.",
    )
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    certificate_path: Path | None = Field(
        None, description="PEM or PKCS12 certificate of a service principal."
    )
    certificate_password: SecretStr | None = None
    managed_identity_client_id: str | None = Field(None, description="A user-assigned managed identity.")
    federated_token_file: Path | None = Field(
        None, description="Workload identity token file (default: AZURE_FEDERATED_TOKEN_FILE)."
    )
    authority_host: str | None = Field(
        None, description="Entra authority for sovereign clouds, e.g. login.microsoftonline.us."
    )

    @model_validator(mode="before")
    @classmethod
    def _infer_auth(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("auth") is None:
            inferred = infer_azure_auth(data)
            if inferred is not None:
                return {**data, "auth": inferred}
        return data

    @model_validator(mode="after")
    def _check_azure_auth(self) -> Self:
        if self.auth == "service_principal_secret" and not (
            self.tenant_id and self.client_id and self.client_secret
        ):
            raise ValueError(
                "a service principal (auth='service_principal_secret') needs tenant_id, client_id "
                "and client_secret"
            )
        if self.auth == "service_principal_certificate" and not (
            self.tenant_id and self.client_id and self.certificate_path
        ):
            raise ValueError(
                "a service principal with a certificate (auth='service_principal_certificate') needs "
                "tenant_id, client_id and certificate_path"
            )
        if self.auth == "default" and self.tenant_id is not None:
            raise ValueError(
                "a service principal needs tenant_id, client_id and client_secret together "
                "(or certificate_path); for workload identity or the Azure CLI set auth= explicitly"
            )
        return self


def azure_token_credential(credentials: AzureCredentials) -> Any:
    """The azure-identity ``TokenCredential`` for ``credentials.auth``.

    A credential that cannot be built (a missing certificate file, a bad password) is a
    :class:`~sygnify.errors.ConfigurationError` that names the file, never the secret.
    """
    try:
        from azure import identity
    except ImportError as exc:
        raise ConfigurationError(
            "Azure credentials need azure-identity: pip install 'sygnify[azure]'", resource="azure-identity"
        ) from exc
    c = credentials
    options: dict[str, Any] = {"authority": c.authority_host} if c.authority_host else {}
    try:
        if c.auth == "service_principal_secret":
            # The model checked these are set.
            assert c.tenant_id is not None
            assert c.client_id is not None
            assert c.client_secret is not None
            return identity.ClientSecretCredential(
                c.tenant_id, c.client_id, c.client_secret.get_secret_value(), **options
            )
        if c.auth == "service_principal_certificate":
            # The model checked these are set.
            assert c.tenant_id is not None
            assert c.client_id is not None
            assert c.certificate_path is not None
            return identity.CertificateCredential(
                c.tenant_id,
                c.client_id,
                certificate_path=str(c.certificate_path),
                password=_reveal(c.certificate_password),
                **options,
            )
        if c.auth == "managed_identity":
            return identity.ManagedIdentityCredential(client_id=c.managed_identity_client_id or c.client_id)
        if c.auth == "workload_identity":
            return identity.WorkloadIdentityCredential(
                tenant_id=c.tenant_id,
                client_id=c.client_id,
                token_file_path=str(c.federated_token_file) if c.federated_token_file else None,
                **options,
            )
        if c.auth == "azure_cli":
            return identity.AzureCliCredential(tenant_id=c.tenant_id or "")
        return identity.DefaultAzureCredential(
            managed_identity_client_id=c.managed_identity_client_id or c.client_id,
            exclude_interactive_browser_credential=True,
            **options,
        )
    except OSError as exc:
        raise ConfigurationError(
            f"cannot build the {c.auth!r} Azure credential: {exc.strerror or type(exc).__name__}: "
            f"{exc.filename or c.certificate_path}",
            resource=str(exc.filename or c.certificate_path),
        ) from None
    except ValueError as exc:
        raise ConfigurationError(
            f"cannot build the {c.auth!r} Azure credential ({type(exc).__name__}): check the certificate "
            "and its password",
            resource=c.auth,
        ) from exc


class AzureStorageCredentials(AzureCredentials):
    """The options of an Azure storage account: a shared key or SAS, else an Entra identity.

    First match wins: a connection string's key or SAS, ``account_key``, ``sas_token``,
    else the identity of :class:`AzureCredentials`. ``account_url`` names a custom endpoint
    (sovereign clouds, private endpoints, Azurite).
    """

    account_name: str | None = None
    account_url: str | None = Field(
        None, description="Blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1."
    )
    connection_string: SecretStr | None = None
    account_key: SecretStr | None = None
    sas_token: SecretStr | None = None

    @model_validator(mode="after")
    def _check_account(self) -> Self:
        if self.connection_string is None and self.account_name is None and self.account_url is None:
            raise ValueError("set connection_string, account_name or account_url")
        return self


@dataclass(frozen=True)
class AzureAccount:
    """The storage account a configuration names, its blob endpoint and any shared key or SAS."""

    name: str
    url: str  # blob endpoint, no trailing slash
    key: str | None = field(repr=False)  # secrets: never in a repr, a log line or a traceback
    sas: str | None = field(repr=False)


def _parse_connection_string(text: str) -> dict[str, str]:
    parts = (item.split("=", 1) for item in text.split(";") if "=" in item)
    return {key.strip().lower(): value.strip() for key, value in parts}


def resolve_storage_account(credentials: AzureStorageCredentials) -> AzureAccount:
    """The account name, blob endpoint, key and SAS of ``credentials``.

    Explicit options win over the connection string's values.
    """
    c = credentials
    key = _reveal(c.account_key)
    sas = c.sas_token.get_secret_value().lstrip("?") if c.sas_token else None
    name, url = c.account_name, c.account_url
    if c.connection_string is not None:
        values = _parse_connection_string(c.connection_string.get_secret_value())
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


def azure_storage_credential(credentials: AzureStorageCredentials, account: AzureAccount) -> Any:
    """What the storage SDK takes as ``credential=``: the shared key, the SAS, else an Entra credential."""
    if account.key is not None:
        return {"account_name": account.name, "account_key": account.key}
    if account.sas is not None:
        return account.sas
    return azure_token_credential(credentials)


# -- errors ----------------------------------------------------------------------------------

_AUTH_CODES = frozenset(
    {
        "AuthenticationFailed",
        "InvalidAuthenticationInfo",
        "InvalidAuthenticationToken",
        "ExpiredAuthenticationToken",
    }
)
_THROTTLE_CODES = frozenset(
    {
        "ServerBusy",
        "TooManyRequests",
        "SubscriptionRequestsThrottled",
        "RequestRateTooLarge",
        "TooManyRequestsError",
    }
)
_TRANSIENT_CODES = frozenset({"InternalError", "OperationTimedOut", "ServiceUnavailable"})


def error_code(exc: BaseException) -> str:
    """The Azure error code of ``exc`` (``BlobNotFound``, ``ServerBusy``...; ``""`` if it has none).

    Storage SDKs set ``error_code``; ARM services put it in the OData body; both send the
    ``x-ms-error-code`` header.
    """
    code = getattr(exc, "error_code", None)
    if not code:
        code = getattr(getattr(exc, "error", None), "code", None)
    if not code:
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        code = headers.get("x-ms-error-code")
    # Storage SDKs hand a StorageErrorCode (a str enum whose str() is its qualified name).
    return str(getattr(code, "value", code) or "")


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s text (Azure messages run on with the full response), or its type."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def translate_azure_error(
    exc: BaseException, message: str, resource: str | None, *, refine: Refine | None = None
) -> SygnifyError | None:
    """Map an azure-core / azure-identity exception onto the sygnify error tree.

    ``refine`` is asked first (a plugin's own codes). ``None``: no Azure rule matched.
    """
    special = refined(refine, exc, message, resource)
    if special is not None:
        return special
    try:
        from azure.core import exceptions as azure_errors
    except ImportError:  # no Azure SDK installed, so no Azure exception either
        return None
    code = error_code(exc)
    status = int(getattr(exc, "status_code", None) or 0)
    if type(exc).__name__ == "CredentialUnavailableError":
        return AuthenticationError(
            f"{message} (no Azure identity available: set a key, SAS, service principal or identity)",
            resource=resource,
        )
    # Azurite answers a bad signature with AuthorizationFailure; Azure with AuthenticationFailed.
    authentication = "failed to authenticate" in str(exc).lower() or code in _AUTH_CODES or status == 401
    if isinstance(exc, azure_errors.ClientAuthenticationError) and not authentication:
        authentication = not (code.startswith("Authorization") or status == 403)
    if authentication:
        return AuthenticationError(f"{message} (check the key, SAS token or identity)", resource=resource)
    if status == 403 or code.startswith("Authorization"):
        return PermissionDeniedError(
            f"{message} (the identity is valid but not allowed to do this)", resource=resource
        )
    headers = getattr(getattr(exc, "response", None), "headers", None)
    delay = retry_after(headers)
    # A 503 is throttling when the service says so (a throttling code or how long to wait).
    if status == 429 or code in _THROTTLE_CODES or (status == 503 and delay is not None):
        return ThrottledError(message, resource=resource, retry_after=delay)
    if isinstance(exc, azure_errors.ResourceNotFoundError) or status == 404:
        return NotFoundError(message, resource=resource)
    if isinstance(exc, azure_errors.ServiceRequestTimeoutError | azure_errors.ServiceResponseTimeoutError):
        return OperationTimeoutError(message, resource=resource)
    if status == 408:
        return OperationTimeoutError(message, resource=resource)
    if status >= 500 or code in _TRANSIENT_CODES:
        return TransientError(message, resource=resource)
    if isinstance(exc, azure_errors.ServiceRequestError | azure_errors.ServiceResponseError):
        return ConnectionFailedError(message, resource=resource)
    if isinstance(exc, azure_errors.HttpResponseError) and 400 <= status < 500:
        return ConfigurationError(message, resource=resource)
    # azure-core refuses bearer tokens over plain http, and malformed keys, with a ValueError.
    if isinstance(exc, ValueError) and any(word in str(exc).lower() for word in ("credential", "https")):
        return ConfigurationError(message, resource=resource)
    return None


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
