"""AWS: the botocore error map over real botocore exceptions; one credentials spec for S3 and SageMaker."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from botocore import exceptions as boto_errors

from sygnify.clouds.aws import AwsCredentials, aws_client, aws_session, translate_aws_error
from sygnify.connectors.s3.config import S3Config, open_s3_clients
from sygnify.connectors.s3.errors import translate_s3_error
from sygnify.errors import (
    AuthenticationError,
    BucketNotFoundError,
    ConfigurationError,
    ConnectionFailedError,
    ModelError,
    NotFoundError,
    ObjectNotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    SygnifyError,
    ThrottledError,
    TransientError,
)
from sygnify.ml.backends.sagemaker import SageMakerConfig
from tests.clouds import assert_translates
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.moto import MotoServer, moto_server


def client_error(code: str, status: int, headers: dict[str, str] | None = None) -> boto_errors.ClientError:
    metadata: dict[str, Any] = {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}
    return boto_errors.ClientError(
        {"Error": {"Code": code, "Message": f"{code} happened"}, "ResponseMetadata": metadata}, "Operation"
    )


CLIENT_ERRORS: list[tuple[boto_errors.ClientError, type[SygnifyError] | None]] = [
    (client_error("InvalidAccessKeyId", 403), AuthenticationError),
    (client_error("SignatureDoesNotMatch", 403), AuthenticationError),
    (client_error("ExpiredTokenException", 400), AuthenticationError),
    (client_error("UnrecognizedClientException", 400), AuthenticationError),
    (client_error("", 401), AuthenticationError),
    (client_error("AccessDenied", 403), PermissionDeniedError),
    (client_error("AccessDeniedException", 400), PermissionDeniedError),
    (client_error("403", 403), PermissionDeniedError),
    (client_error("SlowDown", 503), ThrottledError),
    (client_error("ThrottlingException", 400), ThrottledError),
    (client_error("ProvisionedThroughputExceededException", 400), ThrottledError),
    (client_error("", 429), ThrottledError),
    (client_error("503", 503), ThrottledError),  # a HEAD has no body: the code is the status
    (client_error("InternalError", 500), TransientError),
    (client_error("BadGateway", 502), TransientError),
    (client_error("", 504), TransientError),
    (client_error("RequestTimeout", 400), TransientError),
    (client_error("ResourceNotFoundException", 400), NotFoundError),
    (client_error("", 404), NotFoundError),
    (client_error("ValidationException", 400), ConfigurationError),
    (client_error("InvalidArgument", 400), ConfigurationError),
    (client_error("Conflict", 409), None),  # no AWS-wide meaning: the plugin decides
]


@pytest.mark.parametrize(
    ("exc", "expected"),
    CLIENT_ERRORS,
    ids=[
        f"{e.response['Error']['Code']}-{e.response['ResponseMetadata']['HTTPStatusCode']}"
        for e, _ in CLIENT_ERRORS
    ],
)
def test_client_errors(exc: boto_errors.ClientError, expected: type[SygnifyError] | None) -> None:
    assert_translates(translate_aws_error, exc, expected)


def test_5xx_is_transient_everywhere_and_throttling_is_throttled() -> None:
    for status in (500, 502, 503, 504):
        error = translate_aws_error(client_error("Whatever", status), "op failed", None)
        assert isinstance(error, TransientError), status


def test_throttling_keeps_retry_after() -> None:
    error = translate_aws_error(client_error("SlowDown", 503, {"retry-after": "3"}), "op failed", None)
    assert isinstance(error, ThrottledError)
    assert error.retry_after == 3.0
    bare = translate_aws_error(client_error("Throttling", 400), "op failed", None)
    assert isinstance(bare, ThrottledError)
    assert bare.retry_after is None


CORE_ERRORS: list[tuple[Exception, type[SygnifyError] | None]] = [
    (boto_errors.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), ConnectionFailedError),
    (boto_errors.ConnectionClosedError(endpoint_url="http://x"), ConnectionFailedError),
    (boto_errors.ProxyConnectionError(proxy_url="http://proxy"), ConnectionFailedError),
    (boto_errors.ResponseStreamingError(error="reset"), ConnectionFailedError),
    (boto_errors.IncompleteReadError(actual_bytes=1, expected_bytes=2), ConnectionFailedError),
    (boto_errors.ReadTimeoutError(endpoint_url="http://x"), OperationTimeoutError),
    (boto_errors.ConnectTimeoutError(endpoint_url="http://x"), OperationTimeoutError),
    (boto_errors.SSLError(endpoint_url="https://x", error="bad cert"), ConfigurationError),
    (boto_errors.NoCredentialsError(), AuthenticationError),
    (
        boto_errors.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
        AuthenticationError,
    ),
    (boto_errors.CredentialRetrievalError(provider="sso", error_msg="expired"), AuthenticationError),
    (boto_errors.ProfileNotFound(profile="nobody"), ConfigurationError),
    (boto_errors.NoRegionError(), ConfigurationError),
    (boto_errors.ParamValidationError(report="Bucket is required"), ConfigurationError),
    (RuntimeError("not botocore"), None),
]


@pytest.mark.parametrize(("exc", "expected"), CORE_ERRORS, ids=[type(e).__name__ for e, _ in CORE_ERRORS])
def test_botocore_errors(exc: Exception, expected: type[SygnifyError] | None) -> None:
    error = assert_translates(translate_aws_error, exc, expected)
    if expected is ConnectionFailedError:
        assert isinstance(error, TransientError)  # so the retry policy retries it


def test_s3_refines_the_aws_map() -> None:
    assert type(translate_s3_error(client_error("NoSuchBucket", 404), "m", "b")) is BucketNotFoundError
    assert type(translate_s3_error(client_error("NoSuchKey", 404), "m", "k")) is ObjectNotFoundError
    assert type(translate_s3_error(client_error("InvalidRange", 416), "m", "k")) is ConfigurationError
    # what S3 does not refine is AWS's
    assert type(translate_s3_error(client_error("SlowDown", 503), "m", "k")) is ThrottledError
    assert type(translate_s3_error(boto_errors.EndpointConnectionError(endpoint_url="x"), "m", None)) is (
        ConnectionFailedError
    )


def test_a_refine_hook_wins_and_falls_through() -> None:
    def refine(exc: BaseException, message: str, resource: str | None) -> SygnifyError | None:
        return ModelError(message, resource=resource) if "Model" in str(exc) else None

    assert type(translate_aws_error(client_error("ModelError", 424), "m", None, refine=refine)) is ModelError
    assert (
        type(translate_aws_error(client_error("SlowDown", 503), "m", None, refine=refine)) is ThrottledError
    )


# -- one credentials spec ------------------------------------------------------------------

CREDENTIALS = {
    "region": "eu-west-1",
    "endpoint_url": "http://127.0.0.1:9",
    "access_key_id": "AKIASHARED",
    "secret_access_key": "shared-secret",
    "session_token": "shared-token",
    "role_arn": "arn:aws:iam::111122223333:role/reader",
    "external_id": "ext-secret",
    "role_session_name": "batch",
    "role_duration_s": 1800,
    "sts_endpoint_url": "http://127.0.0.1:9",
}


def _credential_fields(config: AwsCredentials) -> dict[str, Any]:
    return AwsCredentials.model_validate(
        {name: getattr(config, name) for name in AwsCredentials.model_fields}
    ).model_dump()


def test_s3_and_sagemaker_take_the_same_credential_options() -> None:
    s3 = S3Config(**CREDENTIALS)
    sagemaker = SageMakerConfig(endpoint_name="ep", **CREDENTIALS)
    assert (
        _credential_fields(s3)
        == _credential_fields(sagemaker)
        == _credential_fields(AwsCredentials(**CREDENTIALS))
    )
    for text in (repr(s3), repr(sagemaker)):
        assert "shared-secret" not in text
        assert "ext-secret" not in text
        assert "shared-token" not in text


def test_sagemaker_old_names_still_work_and_warn() -> None:
    with pytest.warns(DeprecationWarning, match="is deprecated, use") as caught:
        old = SageMakerConfig(
            endpoint_name="ep",
            aws_access_key_id="AKIAOLD",
            aws_secret_access_key="old-secret",
            aws_session_token="old-token",
        )
    assert sorted(str(w.message).split("'")[1] for w in caught) == [
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    ]
    new = SageMakerConfig(
        endpoint_name="ep", access_key_id="AKIAOLD", secret_access_key="old-secret", session_token="old-token"
    )
    assert _credential_fields(old) == _credential_fields(new)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"access_key_id": "A"}, "go together"),
        ({"profile": "dev", "access_key_id": "A", "secret_access_key": "s"}, "profile or access keys"),
        ({"session_token": "t"}, "session_token goes with"),
        ({"role_duration_s": 60}, "900"),
    ],
)
def test_contradictory_credentials_are_refused_by_every_aws_plugin(
    options: dict[str, Any], message: str
) -> None:
    for build in (AwsCredentials, S3Config, lambda **o: SageMakerConfig(endpoint_name="ep", **o)):
        with pytest.raises(ValueError, match=message):
            build(**options)


def test_static_keys_reach_the_session_unchanged() -> None:
    credentials = AwsCredentials(
        access_key_id="AKIA1", secret_access_key="s1", session_token="t1", region="eu-west-2"
    )
    session = aws_session(credentials)
    frozen = session.get_credentials().get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == ("AKIA1", "s1", "t1")
    assert session.region_name == "eu-west-2"


def test_an_unknown_profile_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(ConfigurationError, match="'nobody' is not in the shared config files"):
        aws_session(AwsCredentials(profile="nobody"))


def test_a_client_without_a_region_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    credentials = AwsCredentials(access_key_id="A", secret_access_key="s")
    with pytest.raises(ConfigurationError, match="sagemaker-runtime"):
        aws_client(aws_session(credentials), "sagemaker-runtime", credentials)


def test_assume_role_is_deferred_until_credentials_are_needed() -> None:
    # STS at a closed port: building the session must not call it.
    credentials = AwsCredentials(
        access_key_id="A",
        secret_access_key="s",
        region="us-east-1",
        role_arn="arn:aws:iam::111122223333:role/reader",
        sts_endpoint_url="http://127.0.0.1:9",
    )
    session = aws_session(credentials)
    assert session.get_credentials().method == "sts-assume-role"


# -- against moto: the same options reach the same account ----------------------------------


moto, server = emulator_fixtures(
    moto_server, "moto server could not be installed or started", session="moto", scope="module"
)


def _identity(config: AwsCredentials, verify: bool = True) -> dict[str, Any]:
    session = aws_session(config, verify=verify)
    sts = aws_client(session, "sts", config.model_copy(update={"endpoint_url": config.sts_endpoint_url}))
    identity: dict[str, Any] = sts.get_caller_identity()
    return identity


@pytest.mark.emulator
def test_s3_and_sagemaker_configs_with_the_same_options_reach_the_same_account(server: MotoServer) -> None:
    options = {
        "region": "us-east-1",
        "endpoint_url": server.endpoint,
        "access_key_id": "AKIAEXAMPLEKEY000001",
        "secret_access_key": "shared-secret",
        "role_arn": "arn:aws:iam::210987654321:role/shared",
        "role_session_name": "clouds-test",
        "sts_endpoint_url": server.endpoint,
    }
    s3_config = S3Config(**options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names do not warn
        sagemaker_config = SageMakerConfig(endpoint_name="ep", **options)
    s3_identity, sagemaker_identity = _identity(s3_config), _identity(sagemaker_config)
    assert s3_identity["Account"] == sagemaker_identity["Account"] == "210987654321"
    assert s3_identity["Arn"] == sagemaker_identity["Arn"]
    assert s3_identity["Arn"].endswith("assumed-role/shared/clouds-test")

    # What the S3 connector's clients write in that account, a client built from the
    # SageMaker config's session reads back.
    bucket = f"clouds-{uuid.uuid4().hex[:12]}"
    clients = open_s3_clients(s3_config)
    clients.s3.create_bucket(Bucket=bucket)
    clients.s3.put_object(Bucket=bucket, Key="k", Body=b"same account")
    other = aws_client(aws_session(sagemaker_config), "s3", sagemaker_config)
    assert other.get_object(Bucket=bucket, Key="k")["Body"].read() == b"same account"

    # The old SageMaker names reach the same account too.
    old = {**options}
    old["aws_access_key_id"] = old.pop("access_key_id")
    old["aws_secret_access_key"] = old.pop("secret_access_key")
    with pytest.warns(DeprecationWarning, match="is deprecated, use"):
        legacy = SageMakerConfig(endpoint_name="ep", **old)
    assert _identity(legacy)["Arn"] == s3_identity["Arn"]
