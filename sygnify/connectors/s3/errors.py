"""How boto3 / botocore exceptions become :mod:`sygnify.errors` types.

S3 error codes and HTTP statuses pick the kind; throttling keeps the server's
``Retry-After`` so the retry policy waits at least that long::

    >>> from botocore.exceptions import ClientError
    >>> metadata = {"HTTPStatusCode": 503, "HTTPHeaders": {"retry-after": "2"}}
    >>> throttled = ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": metadata}, "GetObject")
    >>> error = translate_s3_error(throttled, "s3 get failed", "s3://lake/x")
    >>> type(error).__name__, error.retry_after
    ('ThrottledError', 2.0)
    >>> translate_s3_error(RuntimeError("boom"), "s3 get failed", None) is None
    True
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone

import botocore.exceptions

from sygnify.errors import (
    AuthenticationError,
    BucketNotFoundError,
    ConfigurationError,
    ConnectionFailedError,
    ObjectNotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    SygnifyError,
    ThrottledError,
    TransientError,
)

__all__ = ["error_code", "translate_s3_error"]

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


def translate_s3_error(exc: Exception, message: str, resource: str | None) -> SygnifyError | None:
    """Map a boto3 / botocore exception onto the sygnify error tree (``None``: not a botocore error)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return _translate_client_error(exc, message, resource)
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
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
    return None


def error_code(exc: botocore.exceptions.ClientError) -> str:
    """The S3 error code of ``exc`` (``NoSuchKey``, ``SlowDown``...; ``""`` if it has none)."""
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
    code = error_code(exc)
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
