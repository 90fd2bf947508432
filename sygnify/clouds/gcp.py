"""Google Cloud: one credentials spec, one way to build google-auth credentials, one error map.

Every Google Cloud plugin (the ``bigquery`` connector, the ``vertex`` model backend) mixes
:class:`GcpCredentials` into its config. Credentials, in order of precedence: a
service-account key (``credentials_file`` or ``credentials_json``), an OAuth 2 access
token (``access_token``), none at all (``anonymous``, for emulators), else application
default credentials; ``impersonate_service_account`` wraps any of them. Nothing here
imports google-auth until credentials are built, and building them sends no request::

    >>> credentials, project = gcp_credentials(GcpCredentials(access_token="ya29.secret"))
    >>> type(credentials).__module__, project
    ('google.oauth2.credentials', None)
    >>> try:
    ...     GcpCredentials(anonymous=True, access_token="t")
    ... except ValueError as exc:
    ...     print(exc.errors()[0]["msg"].split(" (")[1])
    got access_token, anonymous)

:func:`translate_gcp_error` maps google-api-core / google-auth exceptions (and the
``requests`` errors of their HTTP transport) onto :mod:`sygnify.errors`::

    >>> from google.api_core import exceptions as gexc
    >>> type(translate_gcp_error(gexc.ServiceUnavailable("blip"), "query failed", None)).__name__
    'TransientError'
    >>> limited = gexc.Forbidden("slow down", errors=[{"reason": "rateLimitExceeded"}])
    >>> type(translate_gcp_error(limited, "query failed", None)).__name__
    'ThrottledError'
    >>> translate_gcp_error(KeyError("x"), "query failed", None) is None
    True
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

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
    from google.auth.credentials import Credentials

__all__ = [
    "CLOUD_PLATFORM_SCOPE",
    "GcpCredentials",
    "bearer_token",
    "THROTTLE_REASONS",
    "describe_gcp_error",
    "error_reason",
    "gcp_credentials",
    "translate_gcp_error",
]

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class GcpCredentials(CloudCredentials):
    """The Google Cloud credential options every Google Cloud plugin accepts.

    Secrets (the key JSON, the access token) are :class:`~pydantic.SecretStr`.
    """

    credentials_file: Path | None = Field(None, description="Service-account key file (JSON).")
    credentials_json: SecretStr | None = Field(None, description="Service-account key as JSON text.")
    access_token: SecretStr | None = Field(None, description="An OAuth 2 access token.")
    anonymous: bool = Field(False, description="No credentials at all (for emulators).")
    impersonate_service_account: str | None = Field(None, description="Act as this service account.")
    impersonation_delegates: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=lambda: [CLOUD_PLATFORM_SCOPE])

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        given = [
            name
            for name in ("credentials_file", "credentials_json", "access_token")
            if getattr(self, name) is not None
        ] + (["anonymous"] if self.anonymous else [])
        if len(given) > 1:
            raise ValueError(
                "give at most one of credentials_file, credentials_json, access_token, anonymous "
                f"(got {', '.join(given)})"
            )
        if self.anonymous and self.impersonate_service_account:
            raise ValueError("anonymous excludes impersonate_service_account")
        return self


def gcp_credentials(credentials: GcpCredentials) -> tuple[Credentials, str | None]:
    """google-auth credentials and the project they imply (``None`` when they name none).

    Key material is never echoed: an unreadable key is an
    :class:`~sygnify.errors.AuthenticationError` that names only the kind of problem.
    """
    # google-auth is untyped; go through Any rather than sprinkle ignores.
    service_account: Any = importlib.import_module("google.oauth2.service_account")
    user_credentials: Any = importlib.import_module("google.oauth2.credentials")
    auth_exceptions: Any = importlib.import_module("google.auth.exceptions")

    c = credentials
    project: str | None = None
    built: Any
    try:
        if c.credentials_file is not None:
            built = service_account.Credentials.from_service_account_file(
                str(c.credentials_file), scopes=c.scopes
            )
            project = getattr(built, "project_id", None)
        elif c.credentials_json is not None:
            info = json.loads(c.credentials_json.get_secret_value())
            built = service_account.Credentials.from_service_account_info(info, scopes=c.scopes)
            project = getattr(built, "project_id", None)
        elif c.access_token is not None:
            built = user_credentials.Credentials(token=c.access_token.get_secret_value())
        elif c.anonymous:
            built = importlib.import_module("google.auth.credentials").AnonymousCredentials()
        else:
            google_auth: Any = importlib.import_module("google.auth")
            built, project = google_auth.default(scopes=c.scopes)
    except FileNotFoundError:
        raise ConfigurationError(
            f"credentials_file {c.credentials_file} does not exist", resource="credentials_file"
        ) from None
    except (ValueError, KeyError) as exc:  # json.JSONDecodeError is a ValueError
        # Never echo the key material: name the problem only.
        raise AuthenticationError(
            f"the service-account key is not valid ({type(exc).__name__}); check the JSON key file",
            resource="credentials",
        ) from None
    except auth_exceptions.DefaultCredentialsError:
        raise AuthenticationError(
            "no application default credentials found; run `gcloud auth application-default login`, "
            "set GOOGLE_APPLICATION_CREDENTIALS, or pass credentials_file/access_token",
            resource="credentials",
        ) from None
    if c.impersonate_service_account:
        impersonated: Any = importlib.import_module("google.auth.impersonated_credentials")
        built = impersonated.Credentials(
            source_credentials=built,
            target_principal=c.impersonate_service_account,
            target_scopes=c.scopes,
            delegates=c.impersonation_delegates or None,
        )
    return cast("Credentials", built), project


def bearer_token(credentials: Credentials) -> str:
    """A valid access token of ``credentials``, refreshed first when it is missing or expired."""
    live: Any = credentials
    if not live.valid:
        transport: Any = importlib.import_module("google.auth.transport.requests")
        live.refresh(transport.Request())
    return str(live.token)


def describe_gcp_error(exc: BaseException) -> str:
    """Text of ``exc`` that is safe to show: the API's message, and only the type of an auth failure.

    google-auth errors can carry token-endpoint answers, so their text is left out.
    """
    if type(exc).__module__.startswith("google.auth"):
        return type(exc).__name__
    return str(getattr(exc, "message", None) or exc)


def error_reason(exc: BaseException) -> str:
    """The reason of a Google API error (``rateLimitExceeded``, ``notFound``...; ``""`` if none)."""
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    return str(first.get("reason", "") or getattr(exc, "reason", None) or "")


THROTTLE_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "RATE_LIMIT_EXCEEDED"}
)
_TRANSIENT_REASONS = frozenset({"backendError", "internalError"})


def translate_gcp_error(
    exc: BaseException, message: str, resource: str | None, *, refine: Refine | None = None
) -> SygnifyError | None:
    """Map a google-api-core / google-auth / transport exception onto the sygnify error tree.

    ``refine`` is asked first (a plugin's own meanings). ``None``: no Google Cloud rule matched.
    """
    special = refined(refine, exc, message, resource)
    if special is not None:
        return special
    try:
        import requests
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
    except ImportError:  # no Google SDK installed, so no Google exception either
        return None

    if isinstance(exc, gexc.RetryError) and isinstance(exc.cause, Exception):
        return translate_gcp_error(exc.cause, message, resource) or TransientError(message, resource=resource)
    if isinstance(exc, gexc.DeadlineExceeded | requests.Timeout):
        return OperationTimeoutError(message, resource=resource)
    if isinstance(
        exc,
        auth_exc.RefreshError | auth_exc.DefaultCredentialsError | gexc.Unauthorized | gexc.Unauthenticated,
    ):
        return AuthenticationError(
            f"{message} (credentials were rejected or could not be refreshed: check the key, token "
            "or impersonation rights)",
            resource=resource,
        )
    reason = error_reason(exc)
    if isinstance(exc, gexc.TooManyRequests) or reason in THROTTLE_REASONS:  # ResourceExhausted too
        headers = getattr(getattr(exc, "response", None), "headers", None)
        return ThrottledError(message, resource=resource, retry_after=retry_after(headers))
    if isinstance(exc, gexc.Forbidden | gexc.PermissionDenied):
        return PermissionDeniedError(
            f"{message} (the credentials are valid but not allowed to do this)", resource=resource
        )
    if isinstance(exc, gexc.NotFound):
        return NotFoundError(message, resource=resource)
    if isinstance(exc, gexc.ServerError | gexc.RetryError) or reason in _TRANSIENT_REASONS:
        return TransientError(message, resource=resource)
    if isinstance(exc, auth_exc.TransportError | requests.ConnectionError | ConnectionError):
        return ConnectionFailedError(message, resource=resource)
    if isinstance(exc, gexc.ClientError):
        return ConfigurationError(message, resource=resource)
    return None
