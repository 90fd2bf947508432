"""Azure: the azure-core error map over real azure-core exceptions and responses; one credentials spec."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core import exceptions as azure_errors
from azure.core.pipeline.transport import RequestsTransportResponse
from azure.core.rest import HttpRequest
from azure.identity import CredentialUnavailableError

from sygnify.clouds.azure import (
    AzureCredentials,
    AzureStorageCredentials,
    azure_storage_credential,
    azure_token_credential,
    error_code,
    resolve_storage_account,
    translate_azure_error,
)
from sygnify.connectors.azure_blob.config import AzureBlobConfig
from sygnify.connectors.azure_blob.errors import translate_azure_error as translate_blob_error
from sygnify.errors import (
    AuthenticationError,
    BucketNotFoundError,
    ConfigurationError,
    ConnectionFailedError,
    NotFoundError,
    ObjectNotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    QueryError,
    SygnifyError,
    ThrottledError,
    TransientError,
)
from sygnify.ml.backends.azureml import AzureMLConfig
from sygnify.orchestrators.azure_data_factory.config import AzureDataFactoryConfig, translate_adf_error
from tests.clouds import assert_translates


def response(
    status: int, headers: dict[str, str] | None = None, body: bytes = b""
) -> RequestsTransportResponse:
    """A real azure-core transport response around a real ``requests.Response``."""
    raw = requests.Response()
    raw.status_code = status
    raw.reason = "Reason"
    raw.headers.update(headers or {})
    raw._content = body
    return RequestsTransportResponse(HttpRequest("GET", "https://contoso.example/resource"), raw)


def http_error(
    status: int,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    kind: type[azure_errors.HttpResponseError] = azure_errors.HttpResponseError,
) -> azure_errors.HttpResponseError:
    all_headers = dict(headers or {})
    body = b""
    if code is not None:
        all_headers["x-ms-error-code"] = code
        all_headers["Content-Type"] = "application/json"
        body = b'{"error": {"code": "%s", "message": "it failed"}}' % code.encode()
    return kind(response=response(status, all_headers, body))


HTTP_ERRORS: list[tuple[str, Exception, type[SygnifyError] | None]] = [
    ("401", http_error(401, code="InvalidAuthenticationToken"), AuthenticationError),
    (
        "auth-failed",
        http_error(403, code="AuthenticationFailed", kind=azure_errors.ClientAuthenticationError),
        AuthenticationError,
    ),
    (
        "client-auth-403",
        http_error(403, code="AuthorizationPermissionMismatch", kind=azure_errors.ClientAuthenticationError),
        PermissionDeniedError,
    ),
    ("403", http_error(403, code="AuthorizationFailure"), PermissionDeniedError),
    ("403-plain", http_error(403), PermissionDeniedError),
    ("429", http_error(429, code="TooManyRequests"), ThrottledError),
    ("busy", http_error(503, code="ServerBusy"), ThrottledError),
    ("503-retry-after", http_error(503, headers={"Retry-After": "4"}), ThrottledError),
    ("503", http_error(503), TransientError),
    ("500", http_error(500, code="InternalError"), TransientError),
    ("502", http_error(502), TransientError),
    ("504", http_error(504), TransientError),
    ("408", http_error(408), OperationTimeoutError),
    ("404", http_error(404, kind=azure_errors.ResourceNotFoundError), NotFoundError),
    ("404-plain", http_error(404), NotFoundError),
    ("409", http_error(409, kind=azure_errors.ResourceExistsError), ConfigurationError),
    ("400", http_error(400, code="InvalidInput"), ConfigurationError),
    ("no-identity", CredentialUnavailableError("no identity"), AuthenticationError),
    ("client-auth", azure_errors.ClientAuthenticationError("token refused"), AuthenticationError),
    ("refused", azure_errors.ServiceRequestError("connection refused"), ConnectionFailedError),
    ("dropped", azure_errors.ServiceResponseError("connection reset"), ConnectionFailedError),
    ("request-timeout", azure_errors.ServiceRequestTimeoutError("slow"), OperationTimeoutError),
    ("response-timeout", azure_errors.ServiceResponseTimeoutError("slow"), OperationTimeoutError),
    (
        "http",
        ValueError("Bearer token authentication is not permitted for non-TLS (https)"),
        ConfigurationError,
    ),
    ("other", RuntimeError("not azure"), None),
]


@pytest.mark.parametrize(("exc", "expected"), [c[1:] for c in HTTP_ERRORS], ids=[c[0] for c in HTTP_ERRORS])
def test_azure_errors(exc: Exception, expected: type[SygnifyError] | None) -> None:
    assert_translates(translate_azure_error, exc, expected)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ms-retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "7"}, 7.0),
        ({}, None),
    ],
)
def test_throttling_honours_every_retry_after_header(headers: dict[str, str], seconds: float | None) -> None:
    error = translate_azure_error(http_error(429, headers=headers), "op failed", None)
    assert isinstance(error, ThrottledError)
    assert error.retry_after == seconds


def test_blob_and_data_factory_agree_on_5xx_and_throttling() -> None:
    for status in (500, 502, 503, 504):
        for translate in (translate_azure_error, translate_blob_error, translate_adf_error):
            error = translate(http_error(status), "op failed", None)
            assert type(error) is TransientError, (translate, status)
    throttled = http_error(429, headers={"retry-after-ms": "2000"})
    for translate in (translate_azure_error, translate_blob_error, translate_adf_error):
        error = translate(throttled, "op failed", None)
        assert isinstance(error, ThrottledError)
        assert error.retry_after == 2.0


def test_blob_refines_missing_containers_and_blobs() -> None:
    container = http_error(404, code="ContainerNotFound", kind=azure_errors.ResourceNotFoundError)
    blob = http_error(404, code="BlobNotFound", kind=azure_errors.ResourceNotFoundError)
    assert type(translate_blob_error(container, "m", "c")) is BucketNotFoundError
    assert type(translate_blob_error(blob, "m", "c/b")) is ObjectNotFoundError
    assert type(translate_azure_error(blob, "m", "c/b")) is NotFoundError  # Azure-wide meaning


def test_data_factory_refines_bad_requests_and_always_answers() -> None:
    assert type(translate_adf_error(http_error(400, code="BadRequest"), "m", "p")) is QueryError
    assert type(translate_adf_error(RuntimeError("x"), "m", "p")) is SygnifyError


# -- one credentials spec ------------------------------------------------------------------

PRINCIPAL = {"tenant_id": "tenant", "client_id": "client", "client_secret": "very-secret"}
ADF = {"subscription_id": "s", "resource_group": "rg", "factory_name": "f"}


def configs(**options: Any) -> list[AzureCredentials]:
    """One config of every Azure plugin, built from the same credential options."""
    return [
        AzureCredentials(**options),
        AzureDataFactoryConfig(**ADF, **options),
        AzureBlobConfig(account_name="acct", **options),
        AzureMLConfig(scoring_uri="https://ml.example/score", **options),
    ]


@pytest.mark.parametrize(
    ("options", "kind", "credential"),
    [
        ({}, "default", "DefaultAzureCredential"),
        (PRINCIPAL, "service_principal_secret", "ClientSecretCredential"),
        (
            {"auth": "managed_identity", "managed_identity_client_id": "mi"},
            "managed_identity",
            "ManagedIdentityCredential",
        ),
        ({"auth": "azure_cli", "tenant_id": "tenant"}, "azure_cli", "AzureCliCredential"),
    ],
)
def test_every_azure_plugin_builds_the_same_credential(
    options: dict[str, Any], kind: str, credential: str
) -> None:
    for config in configs(**options):
        assert config.auth == kind
        assert type(azure_token_credential(config)).__name__ == credential
        assert "very-secret" not in repr(config)


def test_workload_identity_reads_the_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("federated-token")
    credentials = AzureCredentials(
        auth="workload_identity", tenant_id="tenant", client_id="client", federated_token_file=token
    )
    assert type(azure_token_credential(credentials)).__name__ == "WorkloadIdentityCredential"


def test_a_certificate_is_inferred_and_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    credentials = AzureCredentials(tenant_id="t", client_id="c", certificate_path=tmp_path / "missing.pem")
    assert credentials.auth == "service_principal_certificate"
    with pytest.raises(ConfigurationError, match=r"missing\.pem"):
        azure_token_credential(credentials)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tenant_id": "t", "client_secret": "s"}, "needs tenant_id, client_id and client_secret"),
        ({"auth": "service_principal_secret", "tenant_id": "t"}, "client_secret"),
        ({"auth": "service_principal_certificate", "tenant_id": "t", "client_id": "c"}, "certificate_path"),
        ({"tenant_id": "t", "client_id": "c"}, "service principal needs"),
        ({"auth": "magic"}, "auth"),
    ],
)
def test_incomplete_identities_are_refused_by_every_azure_plugin(
    options: dict[str, Any], message: str
) -> None:
    for build in (
        AzureCredentials,
        lambda **o: AzureDataFactoryConfig(**ADF, **o),
        lambda **o: AzureBlobConfig(account_name="acct", **o),
        lambda **o: AzureMLConfig(scoring_uri="https://ml.example/score", **o),
    ):
        with pytest.raises(ValueError, match=message):
            build(**options)


def test_storage_keys_and_sas_win_over_an_identity() -> None:
    keyed = AzureStorageCredentials(account_name="acct", account_key="a2V5", **PRINCIPAL)
    account = resolve_storage_account(keyed)
    assert azure_storage_credential(keyed, account) == {"account_name": "acct", "account_key": "a2V5"}
    signed = AzureStorageCredentials(
        account_url="https://acct.blob.core.windows.net", sas_token="?sv=1&sig=x"
    )
    assert azure_storage_credential(signed, resolve_storage_account(signed)) == "sv=1&sig=x"
    principal = AzureStorageCredentials(account_name="acct", **PRINCIPAL)
    credential = azure_storage_credential(principal, resolve_storage_account(principal))
    assert type(credential).__name__ == "ClientSecretCredential"


def test_connection_strings_name_account_endpoint_and_key() -> None:
    text = (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn"
    )
    account = resolve_storage_account(AzureStorageCredentials(connection_string=text))
    assert (account.name, account.url, account.key) == (
        "acct",
        "https://acct.blob.core.chinacloudapi.cn",
        "a2V5",
    )
    with pytest.raises(ValueError, match="connection_string, account_name or account_url"):
        AzureStorageCredentials()


def test_azure_ml_old_auth_values() -> None:
    keyed = AzureMLConfig(scoring_uri="https://ml.example/score", auth="key", api_key="k")
    assert keyed.api_key is not None
    with pytest.raises(ValueError, match="auth='key' needs api_key"):
        AzureMLConfig(scoring_uri="https://ml.example/score", auth="key")
    with pytest.warns(DeprecationWarning, match="auth='aad' is deprecated"):
        entra = AzureMLConfig(scoring_uri="https://ml.example/score", auth="aad", **PRINCIPAL)
    assert entra.auth == "service_principal_secret"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert AzureMLConfig(scoring_uri="https://ml.example/score").auth == "default"


def test_storage_error_codes_are_read_from_the_storage_sdk_enum() -> None:
    from azure.storage.blob import StorageErrorCode

    busy = azure_errors.HttpResponseError(response=response(503))
    busy.error_code = StorageErrorCode.SERVER_BUSY  # what azure-storage's error processing sets
    assert error_code(busy) == "ServerBusy"
    assert type(translate_azure_error(busy, "m", None)) is ThrottledError
    missing = azure_errors.ResourceNotFoundError(response=response(404))
    missing.error_code = StorageErrorCode.CONTAINER_NOT_FOUND
    assert type(translate_blob_error(missing, "m", "c")) is BucketNotFoundError


def test_the_resolved_account_never_shows_its_key_or_sas() -> None:
    from sygnify.clouds.azure import AzureAccount

    account = AzureAccount("acct", "https://acct.blob.core.windows.net", "S3CRETKEY==", "sv=2024&sig=abc")
    assert "S3CRETKEY" not in repr(account)
    assert "sig=abc" not in repr(account)
