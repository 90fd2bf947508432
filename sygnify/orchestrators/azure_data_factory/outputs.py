"""Blob/ADLS locations named in Data Factory run outputs, and opening them with a storage connector.

>>> parse_storage_url("abfss://raw@lake.dfs.core.windows.net/sales/2026/part-0.parquet")
StorageLocation(account='lake', container='raw', path='sales/2026/part-0.parquet')
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from sygnify.connectors.base import Connector
from sygnify.errors import ConfigurationError
from sygnify.orchestrators.azure_data_factory.config import is_loopback

__all__ = ["StorageLocation", "open_output", "parse_storage_url", "storage_urls"]


@dataclass(frozen=True)
class StorageLocation:
    """A Blob/ADLS location: storage account, container (file system) and path inside it."""

    account: str
    container: str
    path: str

    @property
    def source(self) -> str:
        """``container/path``, the source string the ``azure_blob`` connector reads."""
        return f"{self.container}/{self.path}"


def parse_storage_url(url: str) -> StorageLocation:
    """Split a Blob or ADLS Gen2 URL into account, container and path.

    Understands ``https://ACCOUNT.blob.core.windows.net/container/path`` (and ``.dfs.``,
    other clouds' suffixes), ``abfss://container@ACCOUNT.dfs.core.windows.net/path``
    (``abfs``, ``wasb``, ``wasbs``) and Azurite's ``http://127.0.0.1:10000/ACCOUNT/container/path``.

    >>> parse_storage_url("https://acct.blob.core.windows.net/out/daily%20run/x.parquet").path
    'daily run/x.parquet'
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    segments = [unquote(s) for s in parts.path.split("/") if s]
    labels = host.split(".")
    if parts.scheme in ("abfs", "abfss", "wasb", "wasbs"):
        if not parts.username or len(labels) < 3 or labels[1] not in ("dfs", "blob"):
            raise ConfigurationError(
                f"{url!r} is not a container@ACCOUNT.dfs.core.windows.net URL", resource=url
            )
        return StorageLocation(labels[0], unquote(parts.username), "/".join(segments))
    if parts.scheme in ("https", "http") and len(labels) >= 3 and labels[1] in ("blob", "dfs"):
        if len(segments) >= 2:
            return StorageLocation(labels[0], segments[0], "/".join(segments[1:]))
    elif parts.scheme in ("https", "http") and is_loopback(host) and len(segments) >= 3:
        return StorageLocation(segments[0], segments[1], "/".join(segments[2:]))
    raise ConfigurationError(
        f"{url!r} is not a Blob/ADLS URL with a container and a path (expected "
        "https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH or abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH)",
        resource=url,
    )


def storage_urls(output: Any) -> list[StorageLocation]:
    """Every Blob/ADLS URL found in an activity output (nested dicts and lists), in order.

    >>> storage_urls({"files": ["https://a.blob.core.windows.net/c/x.csv", "not a url"], "n": 2})
    [StorageLocation(account='a', container='c', path='x.csv')]
    """
    found: list[StorageLocation] = []

    def walk(value: Any) -> None:
        if isinstance(value, str) and "://" in value:
            with contextlib.suppress(ConfigurationError):
                found.append(parse_storage_url(value))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(output)
    return found


def open_output(
    location: str | StorageLocation,
    connection: Connector,
    *,
    how: Literal["scan", "stream"] = "scan",
    **options: Any,
) -> Any:
    """Open a run output's Blob/ADLS location through ``connection`` (an ``azure_blob`` one).

    ``how="scan"`` returns ``connection.scan(source, **options)`` (a LazyFrame), ``"stream"``
    returns ``connection.stream(...)``; the source is ``az://container/path`` for the
    ``azure_blob`` connector and ``container/path`` for others (e.g. a local mirror). If the
    connection's config names a storage account, it must be the URL's.
    """
    where = parse_storage_url(location) if isinstance(location, str) else location
    config = getattr(connection, "config", None)
    account = getattr(config, "account_name", None) or getattr(config, "account", None)
    if isinstance(account, str) and account and account != where.account:
        raise ConfigurationError(
            f"output is in storage account {where.account!r} but connection {connection.name!r} is for "
            f"{account!r}; open it with a connection to {where.account!r}",
            resource=where.source,
        )
    # Object-store connectors read ``az://container/path``; others take ``container/path``.
    schemes = getattr(connection, "schemes", ())
    source = f"{schemes[0]}://{where.container}/{where.path}" if schemes else where.source
    if how == "scan":
        return connection.scan(source, **options)
    if how == "stream":
        return connection.stream(source, **options)
    raise ConfigurationError(f"how must be 'scan' or 'stream', got {how!r}")
