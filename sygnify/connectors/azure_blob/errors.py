"""How azure-core / azure-storage-blob exceptions become :mod:`sygnify.errors` types.

Azure's one error map (:func:`sygnify.clouds.azure.translate_azure_error`) does the work,
``Retry-After`` included; Blob Storage adds what a missing container or blob means::

    >>> from azure.core.exceptions import ResourceNotFoundError, ServiceRequestError
    >>> type(translate_azure_error(ResourceNotFoundError("gone"), "azure_blob get failed", "az://raw/x")).__name__
    'ObjectNotFoundError'
    >>> type(translate_azure_error(ServiceRequestError("refused"), "azure_blob get failed", None)).__name__
    'ConnectionFailedError'
    >>> translate_azure_error(RuntimeError("boom"), "azure_blob get failed", None) is None
    True
"""

from __future__ import annotations

import azure.core.exceptions as azure_errors

from sygnify.clouds import azure
from sygnify.clouds.azure import error_code, first_line
from sygnify.errors import BucketNotFoundError, ObjectNotFoundError, SygnifyError

__all__ = ["error_code", "first_line", "translate_azure_error"]


def _refine_blob(exc: BaseException, message: str, resource: str | None) -> SygnifyError | None:
    code = error_code(exc)
    if code == "ContainerNotFound":
        return BucketNotFoundError(f"{message} (create the container or check its name)", resource=resource)
    if isinstance(exc, azure_errors.ResourceNotFoundError) or code == "BlobNotFound":
        return ObjectNotFoundError(message, resource=resource)
    return None


def translate_azure_error(exc: Exception, message: str, resource: str | None) -> SygnifyError | None:
    """Map an Azure SDK exception onto the sygnify error tree (``None``: no Azure rule matched)."""
    return azure.translate_azure_error(exc, message, resource, refine=_refine_blob)
