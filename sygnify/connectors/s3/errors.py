"""How boto3 / botocore exceptions become :mod:`sygnify.errors` types for the ``s3`` connector.

AWS's one error map (:func:`sygnify.clouds.aws.translate_aws_error`) does the work; S3 adds
the codes only it has (a missing bucket, key, upload or version, S3's own bad-input codes)::

    >>> from botocore.exceptions import ClientError
    >>> missing = ClientError({"Error": {"Code": "NoSuchBucket"}}, "GetObject")
    >>> type(translate_s3_error(missing, "s3 get failed", "s3://lake/x")).__name__
    'BucketNotFoundError'
    >>> metadata = {"HTTPStatusCode": 503, "HTTPHeaders": {"retry-after": "2"}}
    >>> throttled = ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": metadata}, "GetObject")
    >>> error = translate_s3_error(throttled, "s3 get failed", "s3://lake/x")
    >>> type(error).__name__, error.retry_after
    ('ThrottledError', 2.0)
    >>> translate_s3_error(RuntimeError("boom"), "s3 get failed", None) is None
    True

A HEAD answer has no body, so a 403 to one carries no error code, and wrong keys cannot be
told from a denied permission by the answer alone (:func:`bodiless_forbidden`; the connector
then asks S3 once more, with a request whose error has a body)::

    >>> head = {"HTTPStatusCode": 403}
    >>> bodiless_forbidden(ClientError({"Error": {"Code": "403"}, "ResponseMetadata": head}, "HeadObject"))
    True
    >>> bodiless_forbidden(ClientError({"Error": {"Code": "AccessDenied"}}, "GetObject"))
    False
"""

from __future__ import annotations

from sygnify.clouds.aws import error_code, translate_aws_error
from sygnify.errors import BucketNotFoundError, ConfigurationError, ObjectNotFoundError, SygnifyError

__all__ = ["bodiless_forbidden", "error_code", "translate_s3_error"]

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload", "NoSuchVersion"})
_BAD_INPUT_CODES = frozenset(
    {"InvalidBucketName", "InvalidRange", "EntityTooSmall", "InvalidPart", "KeyTooLongError"}
)


def _refine_s3(exc: BaseException, message: str, resource: str | None) -> SygnifyError | None:
    code = error_code(exc)
    if code == "NoSuchBucket":
        return BucketNotFoundError(f"{message} (create the bucket or check its name)", resource=resource)
    if code in _NOT_FOUND_CODES:
        return ObjectNotFoundError(message, resource=resource)
    if code in _BAD_INPUT_CODES:
        return ConfigurationError(message, resource=resource)
    return None


def translate_s3_error(exc: Exception, message: str, resource: str | None) -> SygnifyError | None:
    """Map a boto3 / botocore exception onto the sygnify error tree (``None``: no rule matched)."""
    return translate_aws_error(exc, message, resource, refine=_refine_s3)


def bodiless_forbidden(exc: BaseException) -> bool:
    """Whether ``exc`` is a 403 without an error code (a HEAD answer: wrong keys or no permission)."""
    return error_code(exc) in ("403", "Forbidden")
