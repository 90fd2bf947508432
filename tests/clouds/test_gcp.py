"""Google Cloud: the error map over real google-api-core / google-auth exceptions; one credentials spec."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from sygnify.clouds.gcp import GcpCredentials, describe_gcp_error, gcp_credentials, translate_gcp_error
from sygnify.connectors.bigquery.config import BigQueryConfig
from sygnify.connectors.bigquery.errors import translate_bigquery_error
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    QueryError,
    SygnifyError,
    ThrottledError,
    TransientError,
)
from sygnify.ml import RealTimeML
from sygnify.ml.backends.vertex import VertexConfig
from tests.clouds import assert_translates
from tests.clouds.google_token import MINTED_TOKEN, TokenEndpoint, service_account_key, token_endpoint


def http_response(status: int, headers: dict[str, str]) -> requests.Response:
    raw = requests.Response()
    raw.status_code = status
    raw.headers.update(headers)
    return raw


GCP_ERRORS: list[tuple[str, Exception, type[SygnifyError] | None]] = [
    ("401", gexc.Unauthorized("who are you"), AuthenticationError),
    ("unauthenticated", gexc.Unauthenticated("grpc 16"), AuthenticationError),
    ("refresh", auth_exc.RefreshError("invalid_grant"), AuthenticationError),
    ("no-adc", auth_exc.DefaultCredentialsError("none"), AuthenticationError),
    ("403", gexc.Forbidden("no"), PermissionDeniedError),
    ("permission", gexc.PermissionDenied("grpc 7"), PermissionDeniedError),
    ("rate-limit-403", gexc.Forbidden("slow", errors=[{"reason": "rateLimitExceeded"}]), ThrottledError),
    ("quota-403", gexc.Forbidden("quota", errors=[{"reason": "quotaExceeded"}]), ThrottledError),
    ("429", gexc.TooManyRequests("slow"), ThrottledError),
    ("exhausted", gexc.ResourceExhausted("grpc 8"), ThrottledError),
    ("404", gexc.NotFound("no table"), NotFoundError),
    ("400", gexc.BadRequest("bad"), ConfigurationError),
    ("409", gexc.Conflict("exists"), ConfigurationError),
    ("500", gexc.InternalServerError("oops"), TransientError),
    ("502", gexc.BadGateway("gw"), TransientError),
    ("503", gexc.ServiceUnavailable("blip"), TransientError),
    ("504", gexc.GatewayTimeout("gw"), TransientError),
    ("backend-error", gexc.BadRequest("hm", errors=[{"reason": "backendError"}]), TransientError),
    ("deadline", gexc.DeadlineExceeded("late"), OperationTimeoutError),
    ("requests-timeout", requests.ReadTimeout("late"), OperationTimeoutError),
    ("retry-5xx", gexc.RetryError("gave up", cause=gexc.ServiceUnavailable("blip")), TransientError),
    (
        "retry-conn",
        gexc.RetryError("gave up", cause=requests.ConnectionError("refused")),
        ConnectionFailedError,
    ),
    ("retry-none", gexc.RetryError("gave up", cause=None), TransientError),
    ("transport", auth_exc.TransportError("refused"), ConnectionFailedError),
    ("refused", requests.ConnectionError("refused"), ConnectionFailedError),
    ("os-refused", ConnectionRefusedError("refused"), ConnectionFailedError),
    ("other", KeyError("x"), None),
]


@pytest.mark.parametrize(("exc", "expected"), [c[1:] for c in GCP_ERRORS], ids=[c[0] for c in GCP_ERRORS])
def test_gcp_errors(exc: Exception, expected: type[SygnifyError] | None) -> None:
    assert_translates(translate_gcp_error, exc, expected)


def test_throttling_keeps_retry_after() -> None:
    throttled = gexc.TooManyRequests("slow", response=http_response(429, {"Retry-After": "12"}))
    error = translate_gcp_error(throttled, "op failed", None)
    assert isinstance(error, ThrottledError)
    assert error.retry_after == 12.0


def test_bigquery_refines_the_gcp_map() -> None:
    assert type(translate_bigquery_error(gexc.BadRequest("Syntax error"), "q", None)) is QueryError
    assert type(translate_bigquery_error(gexc.ServiceUnavailable("blip"), "q", None)) is TransientError
    limited = gexc.BadRequest("slow", errors=[{"reason": "rateLimitExceeded"}])
    assert type(translate_bigquery_error(limited, "q", None)) is ThrottledError
    timed_out = gexc.BadRequest("Query timed out", errors=[{"reason": "timeout"}])
    assert type(translate_bigquery_error(timed_out, "q", None)) is OperationTimeoutError
    assert type(translate_bigquery_error(KeyError("x"), "q", None)) is SygnifyError


def test_auth_error_text_is_never_echoed() -> None:
    refused = auth_exc.RefreshError("invalid_grant", {"assertion": "eyJ-secret-assertion"})
    assert describe_gcp_error(refused) == "RefreshError"
    error = translate_bigquery_error(refused, "bigquery query failed", None)
    assert isinstance(error, AuthenticationError)
    assert "eyJ-secret" not in str(error)


# -- one credentials spec ------------------------------------------------------------------

VERTEX = {"project": "p", "location": "europe-west4", "endpoint_id": "42"}


def _credential_fields(config: GcpCredentials) -> dict[str, Any]:
    return GcpCredentials.model_validate(
        {name: getattr(config, name) for name in GcpCredentials.model_fields}
    ).model_dump()


def test_bigquery_and_vertex_take_the_same_credential_options() -> None:
    options = {
        "access_token": "ya29.shared-secret",
        "impersonate_service_account": "target@p.iam.gserviceaccount.com",
        "impersonation_delegates": ["middle@p.iam.gserviceaccount.com"],
        "scopes": ["https://www.googleapis.com/auth/bigquery"],
    }
    bigquery, vertex = BigQueryConfig(**options), VertexConfig(**VERTEX, **options)
    assert (
        _credential_fields(bigquery)
        == _credential_fields(vertex)
        == _credential_fields(GcpCredentials(**options))
    )
    for config in (bigquery, vertex):
        assert "shared-secret" not in repr(config)
        credentials, project = gcp_credentials(config)
        assert type(credentials).__module__ == "google.auth.impersonated_credentials"
        assert credentials.service_account_email == "target@p.iam.gserviceaccount.com"  # type: ignore[attr-defined]
        assert project is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"anonymous": True, "access_token": "t"}, "at most one"),
        ({"credentials_json": "{}", "access_token": "t"}, "at most one"),
        (
            {"anonymous": True, "impersonate_service_account": "sa@p.iam.gserviceaccount.com"},
            "anonymous excludes",
        ),
    ],
)
def test_contradictory_credentials_are_refused_by_every_gcp_plugin(
    options: dict[str, Any], message: str
) -> None:
    for build in (GcpCredentials, BigQueryConfig, lambda **o: VertexConfig(**VERTEX, **o)):
        with pytest.raises(ValueError, match=message):
            build(**options)


def test_bigquery_oauth_token_is_the_old_name_of_access_token() -> None:
    with pytest.warns(DeprecationWarning, match="'oauth_token' is deprecated, use 'access_token'"):
        old = BigQueryConfig(oauth_token="ya29.x")
    assert old.access_token is not None
    assert old.access_token.get_secret_value() == "ya29.x"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BigQueryConfig(access_token="ya29.x")


def test_bad_keys_name_the_problem_only(tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        gcp_credentials(GcpCredentials(credentials_file=tmp_path / "missing.json"))
    with pytest.raises(AuthenticationError, match="not valid") as caught:
        gcp_credentials(GcpCredentials(credentials_json='{"type": "service_account", "x": "s3cr3t"}'))
    assert "s3cr3t" not in str(caught.value)


# -- Vertex authenticates with the shared spec, refreshing through a real token endpoint -----


@pytest.fixture
def token_server() -> Iterator[tuple[str, type[TokenEndpoint]]]:
    with token_endpoint() as running:
        yield running


def test_vertex_uses_a_service_account_key_like_bigquery(token_server: tuple[str, Any]) -> None:
    token_uri, handler = token_server
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={"predictions": [1]})

    ml = RealTimeML(http_client=httpx.Client(transport=httpx.MockTransport(answer)), sleep=lambda _: None)
    key = service_account_key(token_uri, project="p")
    options = {
        "backend": "vertex",
        "base_url": "http://vx",
        "credentials_json": key,
        "features": ["a"],
        **VERTEX,
    }
    ml.register("m", retry={"max_attempts": 1}, **options)
    ml.predict("m", {"a": [1.0]})
    assert seen == [f"Bearer {MINTED_TOKEN}"]
    handler.accept = False
    ml.register("rejected", retry={"max_attempts": 1}, **options)
    with pytest.raises(AuthenticationError) as caught:
        ml.predict("rejected", {"a": [1.0]})
    assert "PRIVATE KEY" not in str(caught.value)
    ml.close()
