"""How azure-core / azure-storage-blob exceptions become :mod:`sygnify.errors` types.

Storage error codes (``x-ms-error-code``) and HTTP statuses pick the kind; throttling keeps
the server's ``Retry-After`` so the retry policy waits at least that long::

    >>> from azure.core.exceptions import ResourceNotFoundError, ServiceRequestError
    >>> type(translate_azure_error(ResourceNotFoundError("gone"), "azure_blob get failed", "az://raw/x")).__name__
    'ObjectNotFoundError'
    >>> type(translate_azure_error(ServiceRequestError("refused"), "azure_blob get failed", None)).__name__
    'ConnectionFailedError'
    >>> translate_azure_error(RuntimeError("boom"), "azure_blob get failed", None) is None
    True
"""

from __future__ import annotations

import contextlib

import azure.core.exceptions as azure_errors

from sygnify.errors import (
    AuthenticationError,
    BucketNotFoundError,
    ConfigurationError,
    ConnectionFailedError,
    ObjectNotFoundError,
    PermissionDeniedError,
    SygnifyError,
    ThrottledError,
    TransientError,
)

__all__ = ["error_code", "first_line", "translate_azure_error"]


def translate_azure_error(exc: Exception, message: str, resource: str | None) -> SygnifyError | None:
    """Map an Azure SDK exception onto the sygnify error tree (``None``: no Azure rule matched)."""
    code = error_code(exc)
    status = getattr(exc, "status_code", None) or 0
    if code == "ContainerNotFound":
        return BucketNotFoundError(f"{message} (create the container or check its name)", resource=resource)
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
    return None


def error_code(exc: BaseException) -> str:
    """The storage error code of ``exc`` (``BlobNotFound``, ``ServerBusy``...; ``""`` if it has none)."""
    code = getattr(exc, "error_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        code = headers.get("x-ms-error-code")
    return str(code or "")


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s text (Azure messages run on with the full response), or its type."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
