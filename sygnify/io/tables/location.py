"""What every table format shares: a table's location, and points in its history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, TypeAlias

from sygnify.errors import ConfigurationError

__all__ = [
    "TABLE_FORMATS",
    "AsOf",
    "SchemaMode",
    "TableFormat",
    "TableLocation",
    "check_time_travel",
    "parse_as_of",
]

TableFormat: TypeAlias = Literal["delta", "iceberg"]
#: The table formats sygnify writes and reads.
TABLE_FORMATS: tuple[TableFormat, ...] = ("delta", "iceberg")
#: A point in a table's history: a datetime, or an ISO 8601 string.
AsOf: TypeAlias = datetime | str
#: How a write may change a table's schema: ``"merge"`` adds new columns, ``"overwrite"``
#: (with ``mode="overwrite"``) replaces the schema; None refuses any change (``SchemaError``).
SchemaMode: TypeAlias = Literal["merge", "overwrite"] | None

#: Write modes of a table format (``merge`` upserts by key).
TABLE_WRITE_MODES = ("append", "overwrite", "merge")


@dataclass(frozen=True)
class TableLocation:
    """Where a table lives and how to reach it.

    ``url`` is an absolute local path or a store URL (``s3://bucket/key``,
    ``az://container/key``); ``storage_options`` are object_store settings (the keys
    Polars and deltalake share: ``aws_endpoint_url``, ``account_key``...); ``resource``
    names the table in errors (the user's target). Iceberg also needs a catalog:
    ``catalog`` is a SQLAlchemy URL (``sqlite:///catalog.db``, ``postgresql://...``) or a
    pyiceberg ``Catalog``; ``namespace`` is the Iceberg namespace the table is named in.
    """

    url: str
    storage_options: Mapping[str, str] = field(default_factory=dict)
    #: Polars' own settings on top (its retry bounds), for ``pl.scan_delta``/``pl.scan_iceberg``.
    polars_options: Mapping[str, Any] = field(default_factory=dict)
    resource: str | None = None
    catalog: Any = None
    namespace: str = "sygnify"

    @property
    def name(self) -> str:
        return self.resource or self.url


def parse_as_of(as_of: AsOf, location: TableLocation) -> datetime:
    """``as_of`` as an aware datetime (naive ones and ISO strings without offset are UTC)."""
    if isinstance(as_of, str):
        try:
            moment = datetime.fromisoformat(as_of)
        except ValueError as exc:
            raise ConfigurationError(
                f"as_of must be a datetime or an ISO 8601 string, got {as_of!r}", resource=location.resource
            ) from exc
    elif isinstance(as_of, datetime):
        moment = as_of
    else:
        raise ConfigurationError(
            f"as_of must be a datetime or an ISO 8601 string, got {type(as_of).__name__}",
            resource=location.resource,
        )
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def check_time_travel(version: int | None, as_of: AsOf | None, location: TableLocation) -> None:
    """Refuse ``version`` and ``as_of`` together (they name one point in history)."""
    if version is not None and as_of is not None:
        raise ConfigurationError("pass version= or as_of=, not both", resource=location.resource)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise ConfigurationError(
            f"version must be a non-negative integer, got {version!r}", resource=location.resource
        )
