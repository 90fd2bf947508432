"""The Connector protocol every connector implements, and the base class that helps it.

Data comes back as Arrow: ``query()`` gives a :class:`pyarrow.Table`, ``stream()`` an
iterator of :class:`pyarrow.RecordBatch` of a predictable size, ``scan()`` a Polars
``LazyFrame``. Every SDK call goes through the connection's retry policy and circuit
breaker, and every SDK exception is translated into a :mod:`sygnify.errors` type.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeAlias, TypeVar, runtime_checkable

import polars as pl
import pyarrow as pa
from typing_extensions import Self

from sygnify import events
from sygnify.config import ConnectorConfig, validate_config
from sygnify.connectors.pool import ClientPool
from sygnify.errors import ConfigurationError, SygnifyError
from sygnify.io.arrow import DEFAULT_BATCH_SIZE
from sygnify.resilience import CircuitBreaker, Resilience

__all__ = [
    "BaseConnector",
    "Connector",
    "HealthStatus",
    "QueryParams",
    "WriteMode",
    "WriteResult",
]

WriteMode: TypeAlias = Literal["append", "overwrite"]
#: Positional (``?``) or named (``$name`` / ``@name`` / ``:name``, per backend) parameters.
QueryParams: TypeAlias = Sequence[Any] | Mapping[str, Any] | None

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)
R = TypeVar("R")


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


@runtime_checkable
class Connector(Protocol):
    """What every connection returned by ``CloudDataConnector.connect()`` can do."""

    name: str

    def query(self, sql: str, params: QueryParams = None) -> pa.Table:
        """Run a (parameterized) query and return the whole result."""
        ...

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

    def write(self, data: Any, target: str, *, mode: WriteMode = "append") -> WriteResult:
        """Write Arrow/Polars/pandas data to ``target``."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Names of the datasets/objects/tables under ``prefix``."""
        ...

    def close(self) -> None:
        """Release the connection's clients."""
        ...

    def health(self) -> HealthStatus:
        """Check the service can be reached with these credentials."""
        ...


class BaseConnector(abc.ABC, Generic[ConfigT]):
    """Shared machinery for connectors: config validation, resilience, error translation.

    A connector subclasses this, sets ``type_name`` and ``config_model``, implements the
    protocol methods and ``_check_health()``, and overrides ``_translate()`` to map its
    SDK's exceptions onto :mod:`sygnify.errors`.
    """

    type_name: ClassVar[str] = ""
    config_model: ClassVar[type[ConnectorConfig]] = ConnectorConfig

    def __init__(self, config: ConfigT, *, name: str | None = None, pool: ClientPool | None = None):
        self.config = config
        self.name = name or self.type_name
        self._pool = pool if pool is not None else ClientPool()
        self._resilience = config.resilience(f"{self.type_name}:{self.name}")
        self._closed = False

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], *, name: str | None = None, pool: ClientPool | None = None
    ) -> Self:
        """Validate raw options with ``config_model`` and build the connector."""
        config = validate_config(
            cls.config_model, options, context=f"{cls.type_name} connection {name or ''}".strip()
        )
        return cls(config, name=name, pool=pool)  # type: ignore[arg-type]

    @property
    def breaker(self) -> CircuitBreaker:
        """This connection's circuit breaker (state, listeners)."""
        return self._resilience.breaker

    def _ensure_open(self) -> None:
        if self._closed:
            raise ConfigurationError(
                f"connection {self.name!r} is closed; open a new one with connect()",
                resource=self.name,
            )

    def _call(
        self,
        operation: str,
        fn: Callable[..., R],
        *args: Any,
        resource: str | None = None,
        resilience: Resilience | None = None,
        **kwargs: Any,
    ) -> R:
        """Run one SDK call with retries and the circuit breaker, translating its errors.

        ``resilience`` replaces the connection's policy for this call (e.g. a narrower retry
        policy for a call that is not idempotent); the hooks and error translation stay the same.
        """
        self._ensure_open()

        def attempt() -> R:
            try:
                return fn(*args, **kwargs)
            except SygnifyError:
                raise
            except Exception as exc:
                raise self._translate(exc, operation=operation, resource=resource) from exc

        started = time.perf_counter()
        try:
            result = (self._resilience if resilience is None else resilience).call(attempt)
        except SygnifyError as exc:
            self._emit_call(operation, "error", type(exc).__name__, started)
            raise
        self._emit_call(operation, "ok", None, started)
        return result

    def _translate_stream(self, batches: Iterator[pa.RecordBatch], source: str) -> Iterator[pa.RecordBatch]:
        """Pass ``batches`` through, translating an error raised mid-stream (as a ``stream`` error).

        Such errors are translated but not retried: a restart would repeat rows the caller
        already has.
        """
        try:
            yield from batches
        except SygnifyError:
            raise
        except Exception as exc:
            raise self._translate(exc, operation="stream", resource=source) from exc

    def _emit_call(self, operation: str, outcome: str, error: str | None, started: float) -> None:
        events.emit(
            "connector.call",
            connector=self.type_name,
            name=self.name,
            operation=operation,
            outcome=outcome,
            error=error,
            duration_s=time.perf_counter() - started,
        )

    def _translate(self, exc: Exception, *, operation: str, resource: str | None) -> SygnifyError:
        """Map an SDK exception to a sygnify error; subclasses refine this."""
        return SygnifyError(
            f"{self.type_name} {operation} failed: {type(exc).__name__}: {exc}", resource=resource
        )

    @abc.abstractmethod
    def _check_health(self) -> str:
        """Do a cheap round trip; return a short detail string or raise."""

    def health(self) -> HealthStatus:
        started = time.perf_counter()
        try:
            detail = self._call("health", self._check_health)
            ok = True
        except SygnifyError as exc:
            detail, ok = f"{type(exc).__name__}: {exc.message}", False
        return HealthStatus(
            ok=ok,
            connector=self.type_name,
            name=self.name,
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=detail,
            breaker=self.breaker.state.value,
        )

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        # The config's own repr masks SecretStr fields, so this never shows a secret.
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.name!r} ({state}) {self.config!r}>"
