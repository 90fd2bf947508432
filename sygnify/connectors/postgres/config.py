"""The ``postgres`` connector's configuration and the libpq connection URI it builds.

Give the parts (``host``, ``port``, ``dbname``, ``user``, ``password``) or one ``url``
(``postgresql://user:pass@host:5432/db?sslmode=require``; alias ``dsn``). TLS is verified
by default (``sslmode="verify-full"``) unless the server is on this machine (loopback or a
Unix socket), where it is ``"prefer"``. The password stays a ``SecretStr`` until the URI
is built, and never reaches a repr:

    >>> config = PostgresConfig(host="db.internal", dbname="sales", user="etl", password="p@ss w",
    ...                         statement_timeout=30)
    >>> connection_uri(config)  # doctest: +NORMALIZE_WHITESPACE
    'postgresql://etl:p%40ss%20w@db.internal:5432/sales?sslmode=verify-full&application_name=sygnify&connect_timeout=10&options=-c%20statement_timeout%3D30000'
    >>> "p@ss" in repr(config), config.resolved_sslmode(), PostgresConfig().resolved_sslmode()
    (False, 'verify-full', 'prefer')
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, ConfigDict, Field, SecretStr, model_validator

from sygnify.config import ConnectorConfig

__all__ = ["PostgresConfig", "SslMode", "connection_uri", "describe_target"]

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
_SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_PARTS = ("host", "port", "dbname", "user", "password")


def _is_local(host: str | None) -> bool:
    if not host or host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class PostgresConfig(ConnectorConfig):
    """Options of the ``postgres`` connector (see the module docstring)."""

    model_config = ConfigDict(populate_by_name=True)

    host: str = Field("localhost", description="Host name, IP address, or a Unix socket directory.")
    port: int = Field(5432, ge=1, le=65535)
    dbname: str = Field("postgres", validation_alias=AliasChoices("dbname", "database"))
    user: str | None = Field(None, description="Role to log in as (libpq's default: the OS user).")
    password: SecretStr | None = None
    url: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("url", "dsn"),
        description="A postgresql:// URI instead of host/port/dbname/user/password.",
    )
    sslmode: SslMode | None = Field(
        None, description="libpq sslmode; default verify-full, or prefer for a server on this machine."
    )
    sslrootcert: Path | None = Field(None, description="CA certificate(s) to verify the server with.")
    application_name: str = "sygnify"
    connect_timeout: int = Field(10, ge=1, description="Seconds to wait for a connection.")
    statement_timeout: float | None = Field(
        None, gt=0, description="Seconds a statement may run before the server cancels it."
    )
    server_settings: dict[str, str] = Field(
        default_factory=dict, description="Session settings sent at connect (search_path, work_mem...)."
    )
    pool_size: int = Field(4, ge=1, le=64, description="Connections kept per configuration.")
    checkout_timeout: float = Field(60.0, gt=0, description="Seconds to wait for a free pooled connection.")

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> PostgresConfig:
        if self.url is not None:
            given = sorted(field for field in _PARTS if field in self.model_fields_set)
            if given:
                raise ValueError(f"give url or {', '.join(given)}, not both")
            scheme = urllib.parse.urlsplit(self.url.get_secret_value()).scheme
            if scheme not in ("postgresql", "postgres"):
                raise ValueError("url must start with postgresql:// (or postgres://)")
        for key in self.server_settings:
            if not _SETTING.match(key):
                raise ValueError(f"server_settings key {key!r} is not a setting name")
        return self

    def target_host(self) -> str | None:
        """The host this configuration connects to (from ``url`` when given)."""
        if self.url is None:
            return self.host
        parts = urllib.parse.urlsplit(self.url.get_secret_value())
        hosts = urllib.parse.parse_qs(parts.query).get("host", [])
        return parts.hostname or (hosts[0] if hosts else None)

    def resolved_sslmode(self) -> SslMode:
        """The sslmode in effect: the explicit one, else verify-full unless the server is local."""
        if self.sslmode is not None:
            return self.sslmode
        return "prefer" if _is_local(self.target_host()) else "verify-full"


def _options(config: PostgresConfig) -> str:
    settings = dict(config.server_settings)
    if config.statement_timeout is not None:
        settings.setdefault("statement_timeout", str(round(config.statement_timeout * 1000)))

    def escape(value: str) -> str:  # libpq splits options on spaces; a backslash escapes
        return value.replace("\\", "\\\\").replace(" ", "\\ ")

    return " ".join(f"-c {key}={escape(value)}" for key, value in settings.items())


def connection_uri(config: PostgresConfig) -> str:
    """The libpq URI for ``config`` (it holds the password: never log it)."""
    query: dict[str, str] = {
        "sslmode": config.resolved_sslmode(),
        "application_name": config.application_name,
        "connect_timeout": str(config.connect_timeout),
    }
    if config.sslrootcert is not None:
        query["sslrootcert"] = str(config.sslrootcert.expanduser())
    options = _options(config)
    if options:
        query["options"] = options
    if config.url is not None:
        parts = urllib.parse.urlsplit(config.url.get_secret_value())
        given = dict(urllib.parse.parse_qsl(parts.query))
        merged = {**query, **given}  # what the URL says itself wins
        return urllib.parse.urlunsplit(
            parts._replace(query=urllib.parse.urlencode(merged, quote_via=urllib.parse.quote))
        )
    netloc = ""
    if config.user is not None:
        netloc = urllib.parse.quote(config.user, safe="")
        if config.password is not None:
            netloc += ":" + urllib.parse.quote(config.password.get_secret_value(), safe="")
        netloc += "@"
    host = config.host
    if host.startswith("/"):
        query = {"host": host, "port": str(config.port), **query}
        location = netloc
    else:
        location = f"{netloc}[{host}]" if ":" in host else f"{netloc}{host}"
        location += f":{config.port}"
    path = "/" + urllib.parse.quote(config.dbname, safe="")
    return f"postgresql://{location}{path}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"


def connection_secrets(config: PostgresConfig) -> list[str]:
    """Every spelling of the password ``config`` holds (plain and percent-encoded), longest first.

    Driver messages may echo the URI or a piece of it (libpq does, for a malformed one); these
    are what must be cut out of them.

    >>> connection_secrets(PostgresConfig(url="postgresql://u:p%40ss@db/x"))
    ['postgresql://u:p%40ss@db/x', 'p%40ss', 'p@ss']
    """
    found: list[str] = []
    if config.password is not None:
        secret = config.password.get_secret_value()
        found += [secret, urllib.parse.quote(secret, safe="")]
    if config.url is not None:
        url = config.url.get_secret_value()
        found.append(url)
        netloc = urllib.parse.urlsplit(url).netloc
        userinfo, at, _ = netloc.rpartition("@")
        if at and ":" in userinfo:
            raw = userinfo.split(":", 1)[1]
            found += [raw, urllib.parse.unquote(raw)]
    return sorted({s for s in found if s}, key=len, reverse=True)


def describe_target(config: PostgresConfig) -> str:
    """``user@host:port/dbname`` for messages (never the password)."""
    if config.url is not None:
        parts = urllib.parse.urlsplit(config.url.get_secret_value())
        user = f"{parts.username}@" if parts.username else ""
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # a malformed port: say nothing rather than fail while reporting
            port = ""
        return f"{user}{config.target_host() or 'localhost'}{port}{parts.path or '/'}"
    user = f"{config.user}@" if config.user else ""
    return f"{user}{config.host}:{config.port}/{config.dbname}"
