"""What a connection can do: small capability protocols, and ``Connector``, their union.

Every connection has a ``name``, ``health()`` and ``close()`` (:class:`Healthy`); what
else it does it declares with :class:`Capability` values in its class's
``capabilities``, each matching one protocol:

=================  =========================  ===============================
capability         protocol                   methods
=================  =========================  ===============================
``readable``       :class:`Readable`          ``stream(source, ...)``, ``scan(source, ...)``
``queryable``      :class:`Queryable`         ``query(sql, params)``
``writable``       :class:`Writable`          ``write(data, target, mode=...)``
``catalog``        :class:`Catalog`           ``list(prefix)``
=================  =========================  ===============================

The protocols are ``runtime_checkable``, so code that needs one capability asks for just
that one::

    >>> import tempfile
    >>> from sygnify.connectors.local import LocalConnector
    >>> from sygnify.plugins import PluginContext
    >>> lake = LocalConnector.from_config({"root": tempfile.mkdtemp()}, context=PluginContext("lake"))
    >>> isinstance(lake, Queryable), lake.supports("writable"), sorted(c.value for c in lake.capabilities)
    (True, True, ['catalog', 'queryable', 'readable', 'writable'])

A method a connector does not support is not there: looking it up raises
:class:`~sygnify.errors.UnsupportedOperationError` (see
:class:`~sygnify.connectors.base.BaseConnector`).
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import polars as pl
import pyarrow as pa

from sygnify.io.arrow import DEFAULT_BATCH_SIZE
from sygnify.io.sql import QueryParams

__all__ = [
    "CAPABILITY_METHODS",
    "Capability",
    "Catalog",
    "Connector",
    "HealthStatus",
    "Healthy",
    "Queryable",
    "QueryParams",
    "Readable",
    "Writable",
    "WriteMode",
    "WriteResult",
]

WriteMode: TypeAlias = Literal["append", "overwrite", "merge"]


@dataclass(frozen=True)
class HealthStatus:
    """The outcome of a connection's health check."""

    ok: bool
    connector: str
    name: str
    latency_ms: float
    detail: str = ""
    breaker: str = "closed"


@dataclass(frozen=True)
class WriteResult:
    """What a ``write()`` did: rows written and the objects/files/tables it wrote."""

    target: str
    rows: int
    paths: list[str] = field(default_factory=list)


class Capability(str, enum.Enum):
    """One thing a connection can do beyond health and close (see the module docstring)."""

    READABLE = "readable"
    QUERYABLE = "queryable"
    WRITABLE = "writable"
    CATALOG = "catalog"

    def __str__(self) -> str:
        return self.value


#: The methods each capability stands for.
CAPABILITY_METHODS: Mapping[Capability, tuple[str, ...]] = {
    Capability.READABLE: ("stream", "scan"),
    Capability.QUERYABLE: ("query",),
    Capability.WRITABLE: ("write",),
    Capability.CATALOG: ("list",),
}


@runtime_checkable
class Healthy(Protocol):
    """What every connection has: a name, a health check and ``close()``."""

    name: str

    def health(self) -> HealthStatus:
        """Check the service can be reached with these credentials."""
        ...

    def close(self) -> None:
        """Release the connection's clients."""
        ...


@runtime_checkable
class Readable(Protocol):
    """Reads a dataset, table or collection as Arrow batches or a lazy Polars frame."""

    def stream(
        self,
        source: str,
        *,
        params: QueryParams = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        columns: Sequence[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Yield a query's result or a dataset's rows in batches of ``batch_size`` rows."""
        ...

    def scan(self, source: str, **options: Any) -> pl.LazyFrame:
        """A lazy Polars frame over a dataset, with projection/predicate pushdown."""
        ...


@runtime_checkable
class Queryable(Protocol):
    """Runs SQL."""

    def query(self, sql: str, params: QueryParams = None) -> pa.Table:
        """Run a (parameterized) query and return the whole result."""
        ...


@runtime_checkable
class Writable(Protocol):
    """Writes Arrow/Polars/pandas data."""

    def write(self, data: Any, target: str, *, mode: WriteMode = "append") -> WriteResult:
        """Write Arrow/Polars/pandas data to ``target``."""
        ...


@runtime_checkable
class Catalog(Protocol):
    """Lists what it holds (datasets, objects, tables, collections, pipelines)."""

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Names under ``prefix``."""
        ...


@runtime_checkable
class Connector(Healthy, Readable, Queryable, Writable, Catalog, Protocol):
    """A connection that can do everything: read, query, write and list (most data stores)."""
