"""AWS: one credentials spec, one way to build a boto3 session and client, one botocore error map.

Every AWS plugin (the ``s3`` connector, the ``sagemaker`` model backend) mixes
:class:`AwsCredentials` into its config, so the same option names mean the same thing
everywhere: the default AWS chain, or ``access_key_id`` / ``secret_access_key``
(+ ``session_token``), or a named ``profile``; any of them can then assume ``role_arn``
through STS, with credentials that refresh before they expire. Nothing here imports boto3
until a session is built, so this module loads without the ``s3`` / ``sagemaker`` extras::

    >>> credentials = AwsCredentials(access_key_id="AKIAEXAMPLE", secret_access_key="hunter2")
    >>> credentials.access_key_id, "hunter2" in repr(credentials)
    ('AKIAEXAMPLE', False)
    >>> try:
    ...     AwsCredentials(profile="dev", access_key_id="AKIAEXAMPLE", secret_access_key="hunter2")
    ... except ValueError as exc:
    ...     print(exc.errors()[0]["msg"])
    Value error, use either profile or access keys, not both

:func:`translate_aws_error` maps botocore exceptions onto :mod:`sygnify.errors`; a plugin
passes ``refine`` for the codes only it gives a meaning to::

    >>> from botocore.exceptions import ClientError, EndpointConnectionError
    >>> metadata = {"HTTPStatusCode": 503, "HTTPHeaders": {"retry-after": "2"}}
    >>> throttled = ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": metadata}, "GetObject")
    >>> error = translate_aws_error(throttled, "get failed", "s3://lake/x")
    >>> type(error).__name__, error.retry_after
    ('ThrottledError', 2.0)
    >>> unreachable = EndpointConnectionError(endpoint_url="http://x")
    >>> type(translate_aws_error(unreachable, "get failed", None)).__name__
    'ConnectionFailedError'
    >>> translate_aws_error(RuntimeError("boom"), "get failed", None) is None
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    import boto3

__all__ = ["AwsCredentials", "aws_client", "aws_session", "error_code", "translate_aws_error"]

DEFAULT_REGION = "us-east-1"


class AwsCredentials(CloudCredentials):
    """The AWS credential options every AWS plugin accepts (secrets are :class:`~pydantic.SecretStr`)."""

    region: str | None = Field(None, description="AWS region (default: from the AWS config chain).")
    endpoint_url: str | None = Field(None, description="Custom endpoint (S3-compatible, emulator, VPC).")
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    profile: str | None = Field(None, description="Named profile of the shared AWS config files.")
    role_arn: str | None = Field(None, description="Role to assume with the base credentials.")
    role_session_name: str = "sygnify"
    external_id: SecretStr | None = None
    role_duration_s: int = Field(3600, ge=900, le=43200)
    sts_endpoint_url: str | None = Field(None, description="STS endpoint for role_arn (default: AWS's).")

    @model_validator(mode="after")
    def _check_aws_credentials(self) -> Self:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together")
        if self.profile is not None and self.access_key_id is not None:
            raise ValueError("use either profile or access keys, not both")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token goes with access_key_id and secret_access_key")
        return self


def aws_session(credentials: AwsCredentials, *, verify: bool | str = True) -> boto3.Session:
    """The boto3 session for ``credentials`` (``role_arn`` assumed, refreshing before expiry).

    ``verify`` (a bool, or a CA bundle path) applies to the STS calls of ``role_arn``. An
    unknown ``profile`` is a :class:`~sygnify.errors.ConfigurationError`.
    """
    import boto3
    import botocore.exceptions

    try:
        base = boto3.Session(
            profile_name=credentials.profile,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=_reveal(credentials.secret_access_key),
            aws_session_token=_reveal(credentials.session_token),
            region_name=credentials.region,
        )
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigurationError(
            f"AWS profile {credentials.profile!r} is not in the shared config files "
            "(check the name, AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE)",
            resource=credentials.profile,
        ) from exc
    if credentials.role_arn is None:
        return base
    return _assumed_role_session(base, credentials, verify)


def _assumed_role_session(base: boto3.Session, credentials: AwsCredentials, verify: bool | str) -> Any:
    import boto3
    import botocore.credentials
    import botocore.session

    region = credentials.region or base.region_name or DEFAULT_REGION
    sts = base.client("sts", region_name=region, endpoint_url=credentials.sts_endpoint_url, verify=verify)
    request: dict[str, Any] = {
        "RoleArn": credentials.role_arn,
        "RoleSessionName": credentials.role_session_name,
        "DurationSeconds": credentials.role_duration_s,
    }
    if credentials.external_id is not None:
        request["ExternalId"] = credentials.external_id.get_secret_value()

    def fetch() -> dict[str, str]:
        answer = sts.assume_role(**request)["Credentials"]
        return {
            "access_key": answer["AccessKeyId"],
            "secret_key": answer["SecretAccessKey"],
            "token": answer["SessionToken"],
            "expiry_time": answer["Expiration"].isoformat(),
        }

    # Deferred: STS is first called when a request needs credentials, then again before expiry.
    refreshable = botocore.credentials.DeferredRefreshableCredentials(
        refresh_using=fetch, method="sts-assume-role"
    )

    class AssumedRole(botocore.credentials.CredentialProvider):  # type: ignore[misc]
        METHOD = "sts-assume-role"
        CANONICAL_NAME = "sygnify-assume-role"

        def load(self) -> Any:
            return refreshable

    # A session whose credential chain is this one provider (botocore's public component API).
    core = botocore.session.Session()
    core.register_component("credential_provider", botocore.credentials.CredentialResolver([AssumedRole()]))
    return boto3.Session(botocore_session=core, region_name=region)


def aws_client(
    session: boto3.Session,
    service: str,
    credentials: AwsCredentials,
    *,
    region: str | None = None,
    verify: bool | str = True,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    **config: Any,
) -> Any:
    """A boto3 client of ``service`` with botocore's own retries off.

    sygnify's retry policy is the only one, so attempts are counted and bounded once.
    ``config`` adds :class:`botocore.config.Config` options (``s3=``, ``signature_version=``,
    ``max_pool_connections=``...). Errors building it (no region...) are translated.
    """
    from botocore.config import Config

    boto_config = Config(
        region_name=region or credentials.region or session.region_name,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
        **config,
    )
    try:
        return session.client(
            service, endpoint_url=credentials.endpoint_url, verify=verify, config=boto_config
        )
    except Exception as exc:
        error = translate_aws_error(exc, f"cannot build the AWS {service} client: {exc}", service)
        if error is None:
            raise
        raise error from exc


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (``NoSuchKey``, ``SlowDown``...; ``""`` if none)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


_AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "InvalidClientTokenId",
        "TokenRefreshRequired",
        "AuthFailure",
        "UnrecognizedClientException",
        "MissingAuthenticationToken",
        "IncompleteSignature",
    }
)
_PERMISSION_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "AllAccessDisabled", "UnauthorizedOperation", "403"}
)
_THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
        "ServiceUnavailable",
        "503",
    }
)
_NOT_FOUND_CODES = frozenset({"NotFound", "404", "ResourceNotFoundException", "NoSuchEntity"})
_TRANSIENT_CODES = frozenset({"InternalError", "InternalFailure", "RequestTimeout", "RequestTimeTooSkewed"})
_BAD_INPUT_CODES = frozenset(
    {"InvalidArgument", "InvalidParameterValue", "InvalidParameterCombination", "ValidationException"}
)


def translate_aws_error(
    exc: BaseException, message: str, resource: str | None, *, refine: Refine | None = None
) -> SygnifyError | None:
    """Map a boto3 / botocore exception onto the sygnify error tree.

    ``refine`` is asked first (a plugin's own codes). ``None``: not a botocore exception, or
    a client error no AWS-wide rule gives a meaning to (the plugin decides).
    """
    import botocore.exceptions as boto_errors

    special = refined(refine, exc, message, resource)
    if special is not None:
        return special
    if isinstance(exc, boto_errors.ClientError):
        return _translate_client_error(exc, message, resource)
    if isinstance(
        exc,
        boto_errors.NoCredentialsError
        | boto_errors.PartialCredentialsError
        | boto_errors.CredentialRetrievalError
        | boto_errors.TokenRetrievalError
        | boto_errors.SSOError,
    ):
        return AuthenticationError(
            f"{message} (configure the AWS credential chain, or pass keys, a profile or role_arn)",
            resource=resource,
        )
    if isinstance(exc, boto_errors.ProfileNotFound | boto_errors.NoRegionError):
        return ConfigurationError(message, resource=resource)
    if isinstance(exc, boto_errors.SSLError):
        return ConfigurationError(
            f"{message} (TLS verification failed: trust the server's CA with ca_bundle)",
            resource=resource,
        )
    if isinstance(exc, boto_errors.ReadTimeoutError | boto_errors.ConnectTimeoutError):
        return OperationTimeoutError(message, resource=resource)
    if isinstance(
        exc,
        boto_errors.ConnectionError  # EndpointConnectionError, ProxyConnectionError...
        | boto_errors.HTTPClientError
        | boto_errors.ResponseStreamingError
        | boto_errors.IncompleteReadError,
    ):
        return ConnectionFailedError(message, resource=resource)
    if isinstance(exc, boto_errors.ParamValidationError):
        return ConfigurationError(message, resource=resource)
    return None


def _translate_client_error(exc: Any, message: str, resource: str | None) -> SygnifyError | None:
    code = error_code(exc)
    metadata = exc.response.get("ResponseMetadata", {})
    status = int(metadata.get("HTTPStatusCode", 0) or 0)
    if code in _AUTH_CODES or status == 401:
        return AuthenticationError(f"{message} (check the access key, secret and token)", resource=resource)
    if code in _PERMISSION_CODES or status == 403:
        return PermissionDeniedError(
            f"{message} (the credentials are valid but not allowed to do this)", resource=resource
        )
    if code in _THROTTLE_CODES or status == 429:
        return ThrottledError(
            message, resource=resource, retry_after=retry_after(metadata.get("HTTPHeaders"))
        )
    if status >= 500 or code in _TRANSIENT_CODES:
        return TransientError(message, resource=resource)
    if code in _NOT_FOUND_CODES or status == 404:
        return NotFoundError(message, resource=resource)
    if code in _BAD_INPUT_CODES or status == 400:
        return ConfigurationError(message, resource=resource)
    return None


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
