"""The ``mongodb`` connector's configuration, the driver options it builds, and its error translation.

Everything here is pure: no connection is opened. The configuration validates the URI and
the auth options together, and turns into :class:`pymongo.MongoClient` keyword arguments:

    >>> config = MongoDBConfig(uri="mongodb://db.example:27017/shop", auth_mechanism="SCRAM-SHA-256",
    ...                        username="app", password="hunter2")
    >>> config.database_name, "hunter2" in repr(config)
    ('shop', False)
    >>> options = MongoDBConfig(uri="mongodb://h/db", auth_mechanism="MONGODB-X509",
    ...                         tls_certificate_key_file="client.pem").client_options()
    >>> options["tls"], options["authSource"]
    (True, '$external')

Driver exceptions become :mod:`sygnify.errors` types; transient ones are the retried kinds:

    >>> import pymongo.errors
    >>> type(translate_mongo_error(pymongo.errors.AutoReconnect("reset"), "read failed", "orders")).__name__
    'ConnectionFailedError'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import pymongo.errors as mongo_errors
from bson.errors import InvalidDocument
from pydantic import Field, SecretStr, model_validator

from sygnify.config import ConnectorConfig
from sygnify.connectors.mongodb.schema import InconsistentPolicy
from sygnify.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    DataQualityError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    QueryError,
    SchemaError,
    SygnifyError,
)

__all__ = ["MongoDBConfig", "is_id_duplicate", "translate_mongo_error"]

#: Server error codes worth retrying: network, elections, shutdown, NotPrimary family.
_TRANSIENT_CODES = frozenset({6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150, 234})
_AUTH_CODES = frozenset({18, 33})
_NO_CHANGE_STREAMS = frozenset({40573, 40324})


class MongoDBConfig(ConnectorConfig):
    """Options of the ``mongodb`` connector (secrets are masked in repr, logs and errors)."""

    uri: SecretStr = Field(
        SecretStr("mongodb://127.0.0.1:27017/"),
        description="mongodb:// or mongodb+srv:// (Atlas) connection string; may embed credentials.",
    )
    database: str | None = Field(None, description="Database to use (default: the one in the URI).")
    username: str | None = None
    password: SecretStr | None = None
    auth_source: str | None = None
    auth_mechanism: (
        Literal["SCRAM-SHA-256", "SCRAM-SHA-1", "MONGODB-X509", "MONGODB-AWS", "MONGODB-OIDC", "PLAIN"] | None
    ) = None
    tls: bool | None = Field(None, description="Use TLS (default: the driver's; always on for mongodb+srv).")
    tls_ca_file: Path | None = None
    tls_certificate_key_file: Path | None = Field(None, description="Client certificate + key (X.509).")
    tls_certificate_key_file_password: SecretStr | None = None
    tls_allow_invalid_certificates: bool = Field(False, description="Insecure: only for test servers.")
    tls_allow_invalid_hostnames: bool = Field(False, description="Insecure: only for test servers.")
    max_pool_size: int = Field(100, ge=0)
    min_pool_size: int = Field(0, ge=0)
    max_idle_time_ms: int | None = Field(None, ge=0)
    wait_queue_timeout_ms: int | None = Field(None, ge=0)
    connect_timeout_ms: int = Field(10_000, ge=1)
    server_selection_timeout_ms: int = Field(30_000, ge=1)
    socket_timeout_ms: int | None = Field(None, ge=1)
    app_name: str = "sygnify"
    retry_writes: bool = True
    retry_reads: bool = True
    sample_size: int = Field(1_000, ge=1, description="Documents read to infer a schema.")
    on_inconsistent: InconsistentPolicy = Field("raise", description="'raise' or 'rescue' (see docs).")
    write_batch_size: int = Field(10_000, ge=1, description="Documents per insert_many / bulk_write.")

    @model_validator(mode="after")
    def _check(self) -> MongoDBConfig:
        uri = self.uri.get_secret_value()
        if not uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("uri must start with mongodb:// or mongodb+srv://")
        x509 = self.auth_mechanism == "MONGODB-X509"
        if x509 and self.tls_certificate_key_file is None and "tlsCertificateKeyFile" not in uri:
            raise ValueError("MONGODB-X509 needs tls_certificate_key_file (the client certificate)")
        if self.auth_mechanism == "MONGODB-X509" and self.tls is False:
            raise ValueError("MONGODB-X509 needs TLS; do not set tls=false")
        if self.min_pool_size > self.max_pool_size > 0:
            raise ValueError("min_pool_size must not exceed max_pool_size")
        return self

    @property
    def database_name(self) -> str | None:
        """The database to use: ``database``, else the URI's path."""
        if self.database:
            return self.database
        path = urlsplit(self.uri.get_secret_value()).path.lstrip("/")
        return unquote(path) or None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`pymongo.MongoClient` (besides the URI)."""
        options: dict[str, Any] = {
            "appname": self.app_name,
            "maxPoolSize": self.max_pool_size,
            "minPoolSize": self.min_pool_size,
            "connectTimeoutMS": self.connect_timeout_ms,
            "serverSelectionTimeoutMS": self.server_selection_timeout_ms,
            "retryWrites": self.retry_writes,
            "retryReads": self.retry_reads,
            "tz_aware": True,
            # Subtype 4 binaries decode to uuid.UUID (read as canonical text), and uuid.UUID
            # values encode as subtype 4; without it the driver leaves them as raw Binary.
            "uuidRepresentation": "standard",
            "connect": False,
        }
        optional: dict[str, Any] = {
            "maxIdleTimeMS": self.max_idle_time_ms,
            "waitQueueTimeoutMS": self.wait_queue_timeout_ms,
            "socketTimeoutMS": self.socket_timeout_ms,
            "username": self.username,
            "password": self.password.get_secret_value() if self.password else None,
            "authSource": self.auth_source,
            "authMechanism": self.auth_mechanism,
            "tls": self.tls,
            "tlsCAFile": str(self.tls_ca_file) if self.tls_ca_file else None,
            "tlsCertificateKeyFile": str(self.tls_certificate_key_file)
            if self.tls_certificate_key_file
            else None,
            "tlsCertificateKeyFilePassword": (
                self.tls_certificate_key_file_password.get_secret_value()
                if self.tls_certificate_key_file_password
                else None
            ),
        }
        options.update({key: value for key, value in optional.items() if value is not None})
        if self.auth_mechanism == "MONGODB-X509":
            options.setdefault("tls", True)
            options.setdefault("authSource", "$external")
        if self.tls_allow_invalid_certificates:
            options["tlsAllowInvalidCertificates"] = True
        if self.tls_allow_invalid_hostnames:
            options["tlsAllowInvalidHostnames"] = True
        return options

    def secrets(self) -> list[str]:
        """Secret strings to scrub from driver messages."""
        found = [
            secret.get_secret_value()
            for secret in (self.password, self.tls_certificate_key_file_password)
            if secret is not None and secret.get_secret_value()
        ]
        uri = self.uri.get_secret_value()
        password = urlsplit(uri).password
        if password:
            found += [password, unquote(password)]
        return [*found, uri]


# -- errors --------------------------------------------------------------------------------


def is_id_duplicate(error: Mapping[str, Any]) -> bool:
    """True for a write error that is a duplicate ``_id`` (not a duplicate in another unique index)."""
    return error.get("code") == 11000 and set(error.get("keyPattern") or {"_id": 1}) == {"_id"}


_TIMEOUTS = (mongo_errors.ExecutionTimeout, mongo_errors.NetworkTimeout, mongo_errors.WTimeoutError)
_BAD_CONFIG = (mongo_errors.ConfigurationError, mongo_errors.InvalidURI, mongo_errors.InvalidName)
_BAD_DOCUMENT = (InvalidDocument, mongo_errors.DocumentTooLarge, OverflowError)


def translate_mongo_error(exc: Exception, message: str, resource: str | None) -> SygnifyError:
    """The sygnify error for a driver exception; ``message`` is already scrubbed of secrets."""
    factory: Callable[..., SygnifyError]
    if isinstance(exc, _TIMEOUTS):
        factory = OperationTimeoutError
    elif isinstance(exc, mongo_errors.ConnectionFailure):  # AutoReconnect, NotPrimaryError, selection timeout
        factory = ConnectionFailedError
    elif isinstance(exc, _BAD_CONFIG):
        factory = ConfigurationError
    elif isinstance(exc, _BAD_DOCUMENT):
        factory = SchemaError
    elif isinstance(exc, mongo_errors.BulkWriteError):
        errors = exc.details.get("writeErrors", [])
        if exc.has_error_label("RetryableWriteError"):
            factory = ConnectionFailedError
        elif errors and all(error.get("code") == 11000 for error in errors):
            factory = DataQualityError
            message += f" ({len(errors)} duplicate key(s))"
        else:
            factory = QueryError
    elif isinstance(exc, mongo_errors.OperationFailure):
        text = str(exc)
        if exc.code in _AUTH_CODES or "Authentication failed" in text or "Authentication required" in text:
            factory = AuthenticationError
        elif exc.code == 13:
            factory = PermissionDeniedError
        elif exc.has_error_label("RetryableWriteError") or exc.code in _TRANSIENT_CODES:
            factory = ConnectionFailedError
        elif exc.code == 50:
            factory = OperationTimeoutError
        elif exc.code == 26:
            factory = NotFoundError
        elif exc.code in _NO_CHANGE_STREAMS or "$changeStream" in text:
            factory = ConfigurationError
            message += " (change streams need a replica set or sharded cluster, e.g. Atlas)"
        else:
            factory = QueryError
    elif isinstance(exc, mongo_errors.PyMongoError):
        factory = SygnifyError
    else:
        return SygnifyError(message, resource=resource)
    return factory(message, resource=resource)
