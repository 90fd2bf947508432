"""How pyarrow and Polars errors, raised by their own S3/Azure clients, become :mod:`sygnify.errors` types.

Those readers surface store failures as plain exceptions, so they are told apart by their
type and their text; a return of ``None`` leaves the error to the connector's fallback::

    >>> error = translate_arrow_error(OSError("AWS Error ACCESS_DENIED during GetObject"), "read failed", "s3://b/k")
    >>> type(error).__name__, error.resource
    ('PermissionDeniedError', 's3://b/k')
    >>> translate_arrow_error(RuntimeError("boom"), "read failed", None) is None
    True
"""

from __future__ import annotations

import pyarrow as pa

from sygnify.errors import (
    AuthenticationError,
    BucketNotFoundError,
    ConnectionFailedError,
    DataQualityError,
    ObjectNotFoundError,
    PermissionDeniedError,
    SygnifyError,
)
from sygnify.io.arrow import translate_read_error
from sygnify.io.transient import transient_read_error

__all__ = ["translate_arrow_error"]


def translate_arrow_error(exc: Exception, message: str, resource: str | None) -> SygnifyError | None:
    """Map pyarrow / Polars errors (from their own S3/Azure clients) by their text."""
    text = str(exc)
    upper = text.upper()
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFoundError(message, resource=resource)
    # A store failure first: pyarrow raises some of them (a 503 during a read, through the
    # SDK filesystem too) as ArrowInvalid/OSError whose text names the transient cause.
    transient = transient_read_error(text, message, resource)
    if transient is not None:
        return transient
    if isinstance(exc, pa.ArrowInvalid) or "magic bytes" in text:
        return DataQualityError(message, resource=resource)
    if any(word in upper for word in ("NO_SUCH_BUCKET", "CONTAINERNOTFOUND", "BUCKET DOES NOT EXIST")):
        return BucketNotFoundError(message, resource=resource)
    if any(
        word in upper for word in ("INVALID_ACCESS_KEY", "SIGNATURE_DOES_NOT_MATCH", "AUTHENTICATIONFAILED")
    ):
        return AuthenticationError(message, resource=resource)
    if "ACCESS_DENIED" in upper or "AUTHORIZATION" in upper or "HTTP STATUS 403" in upper:
        return PermissionDeniedError(message, resource=resource)
    if "CONNECTION" in upper:
        return ConnectionFailedError(message, resource=resource)
    if "RESOURCE_NOT_FOUND" in upper or "BLOBNOTFOUND" in upper or "NOT FOUND" in upper:
        return ObjectNotFoundError(message, resource=resource)
    return translate_read_error(exc, message, resource)
