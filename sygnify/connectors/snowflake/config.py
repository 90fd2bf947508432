"""The ``snowflake`` connector's configuration and the ``snowflake.connector.connect`` arguments it builds.

Authentication: ``password``; key pair (``private_key_file`` + optional
``private_key_file_pwd``, PKCS#8 PEM); OAuth (``token``); or
``authenticator="externalbrowser"`` (interactive SSO). Secrets stay ``SecretStr`` until the
connect arguments are built, and never reach a repr:

    >>> config = SnowflakeConfig(account="xy12345", user="etl", password="hunter2", query_timeout=600)
    >>> args = connect_arguments(config)
    >>> args["paramstyle"], args["session_parameters"], "hunter2" in repr(config)
    ('qmark', {'STATEMENT_TIMEOUT_IN_SECONDS': 600}, False)
    >>> connect_arguments(SnowflakeConfig(account="a", token="t"))["authenticator"]
    'oauth'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, SecretStr, model_validator

from sygnify.config import ConnectorConfig
from sygnify.errors import AuthenticationError, ConfigurationError

__all__ = ["SnowflakeConfig", "connect_arguments", "driver_backoff"]


class SnowflakeConfig(ConnectorConfig):
    """Options of the ``snowflake`` connector.

    Authentication: ``password``; key pair (``private_key_file`` + optional
    ``private_key_file_pwd``); OAuth (``token``); or ``authenticator="externalbrowser"``
    for interactive SSO (opens a browser; not for servers).
    """

    model_config = ConfigDict(populate_by_name=True)

    account: str = Field(description="Account identifier, e.g. 'xy12345.eu-west-1' or 'org-account'.")
    user: str | None = None
    password: SecretStr | None = None
    private_key_file: Path | None = Field(None, description="PEM (PKCS#8) private key for key-pair auth.")
    private_key_file_pwd: SecretStr | None = Field(None, description="Passphrase of the private key.")
    token: SecretStr | None = Field(None, description="OAuth access token.")
    authenticator: Literal["snowflake", "snowflake_jwt", "oauth", "externalbrowser"] | None = None
    warehouse: str | None = None
    role: str | None = None
    database: str | None = None
    schema_: str | None = Field(None, alias="schema")
    host: str | None = Field(None, description="Override the host (private link, emulators).")
    port: int | None = Field(None, ge=1, le=65535)
    protocol: Literal["https", "http"] = "https"
    pool_size: int = Field(4, ge=1, le=64, description="Connections kept per configuration.")
    checkout_timeout: float = Field(60.0, gt=0, description="Seconds to wait for a free pooled connection.")
    keep_alive: bool = Field(True, description="Keep sessions alive while idle in the pool.")
    login_timeout: int = Field(60, ge=1)
    network_timeout: int | None = Field(None, ge=1)
    driver_retries: int = Field(
        0,
        ge=0,
        le=10,
        description="HTTP retries the Snowflake driver makes on its own for one request (a 5xx "
        "answer, a dropped connection) before it fails; sygnify's retry policy retries the operation.",
    )
    query_timeout: int | None = Field(
        None,
        ge=1,
        description="Seconds a statement may run: the client cancels it, and the server enforces it "
        "as STATEMENT_TIMEOUT_IN_SECONDS.",
    )
    session_parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    parquet_row_group_rows: int = Field(500_000, ge=1, description="Row group size of write() uploads.")

    @model_validator(mode="after")
    def _auth_is_complete(self) -> SnowflakeConfig:
        method = self.auth_method()
        if method in ("snowflake", "snowflake_jwt", "externalbrowser") and not self.user:
            raise ValueError(f"{method} authentication needs user")
        if method == "snowflake" and self.password is None:
            raise ValueError("give password, private_key_file, token, or authenticator='externalbrowser'")
        if method == "oauth" and self.token is None:
            raise ValueError("authenticator 'oauth' needs token")
        if method == "snowflake_jwt" and self.private_key_file is None:
            raise ValueError("authenticator 'snowflake_jwt' needs private_key_file")
        return self

    def auth_method(self) -> str:
        """The authenticator in effect: the explicit one, else implied by the credentials given."""
        if self.authenticator is not None:
            return self.authenticator
        if self.private_key_file is not None:
            return "snowflake_jwt"
        if self.token is not None:
            return "oauth"
        return "snowflake"


def _load_private_key(config: SnowflakeConfig) -> bytes:
    from cryptography.hazmat.primitives import serialization

    assert config.private_key_file is not None
    try:
        pem = config.private_key_file.expanduser().read_bytes()
    except OSError:
        raise ConfigurationError(
            f"private_key_file {config.private_key_file} cannot be read", resource="private_key_file"
        ) from None
    passphrase = (
        config.private_key_file_pwd.get_secret_value().encode() if config.private_key_file_pwd else None
    )
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        hint = "wrong or missing passphrase, or not a PEM private key"
        raise AuthenticationError(
            f"private key {config.private_key_file} could not be loaded ({hint}: {type(exc).__name__})",
            resource="private_key_file",
        ) from None
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def driver_backoff(retries: int, *, first: float = 0.5, cap: float = 4.0) -> Callable[[], Iterator[float]]:
    """The driver's ``backoff_policy``: ``retries`` waits (doubling from ``first``), then it gives up.

    The driver retries a failed HTTP request (5xx, reset) for as long as its backoff generator
    yields, bounded otherwise only by ``network_timeout`` (unset: forever). This generator
    yields one wait per retry and then raises the driver's ``OperationalError``, which ends
    the request; sygnify's own retry policy and circuit breaker decide what happens next.

    >>> waits = driver_backoff(2)()
    >>> next(waits), next(waits), next(waits)
    (0.5, 1.0, 0.0)
    >>> next(waits)
    Traceback (most recent call last):
    ...
    snowflake.connector.errors.OperationalError: 250003: the Snowflake driver gave up ...
    """

    def waits() -> Iterator[float]:
        delay = first
        for _ in range(retries):
            yield delay
            delay = min(cap, delay * 2)
        yield 0.0  # the driver sleeps this before asking again: no wait before giving up
        errors: Any = importlib.import_module("snowflake.connector.errors")
        raise errors.OperationalError(
            msg=f"the Snowflake driver gave up on an HTTP request after {retries + 1} attempt(s) "
            "(5xx answers or dropped connections); raise driver_retries to let it try longer",
            errno=250003,  # ER_FAILED_TO_REQUEST
        )

    return waits


def connect_arguments(config: SnowflakeConfig) -> dict[str, Any]:
    """Keyword arguments for ``snowflake.connector.connect`` (secrets included: never log them)."""
    args: dict[str, Any] = {
        "account": config.account,
        "paramstyle": "qmark",  # server-side binding: values never enter the SQL text
        # Bounded driver retries: sygnify's policy does the retrying, as for BigQuery and ADF.
        "backoff_policy": driver_backoff(config.driver_retries),
        "client_session_keep_alive": config.keep_alive,
        "login_timeout": config.login_timeout,
        "protocol": config.protocol,
        "session_parameters": dict(config.session_parameters),
    }
    if config.query_timeout is not None:
        # The server cancels a statement past this even when the client is gone (errno 630);
        # an explicit session parameter of the same name wins.
        args["session_parameters"].setdefault("STATEMENT_TIMEOUT_IN_SECONDS", config.query_timeout)
    for key in ("user", "warehouse", "role", "database", "host", "port", "network_timeout"):
        value = getattr(config, key)
        if value is not None:
            args[key] = value
    if config.schema_ is not None:
        args["schema"] = config.schema_
    method = config.auth_method()
    if method == "snowflake" and config.password is not None:
        args["password"] = config.password.get_secret_value()
    elif method == "snowflake_jwt":
        args["authenticator"] = "SNOWFLAKE_JWT"
        args["private_key"] = _load_private_key(config)
    elif method == "oauth" and config.token is not None:
        args["authenticator"] = "oauth"
        args["token"] = config.token.get_secret_value()
    elif method == "externalbrowser":
        args["authenticator"] = "externalbrowser"
    return args
