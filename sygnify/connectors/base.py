"""``BaseConnector``: what every connector shares (config, resilience, errors, capabilities).

Data comes back as Arrow: ``query()`` gives a :class:`pyarrow.Table`, ``stream()`` an
iterator of :class:`pyarrow.RecordBatch` of a predictable size, ``scan()`` a Polars
``LazyFrame``. Every SDK call goes through the connection's retry policy and circuit
breaker, and every SDK exception is translated into a :mod:`sygnify.errors` type. What a
connection can do is declared by its class (:mod:`sygnify.connectors.protocols`); the
``Connector`` protocol, ``HealthStatus`` and ``WriteResult`` are re-exported here.
"""

from __future__ import annotations

import abc
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Generic, NoReturn, TypeVar

import polars as pl
import pyarrow as pa
from polars.io.plugins import register_io_source
from pydantic import BaseModel
from typing_extensions import Self

from sygnify import events
from sygnify.config import ConnectorConfig, config_fingerprint, validate_config
from sygnify.connectors.pool import ClientPool
from sygnify.connectors.protocols import (
    CAPABILITY_METHODS,
    Capability,
    Connector,
    HealthStatus,
    QueryParams,
    WriteMode,
    WriteResult,
)
from sygnify.errors import ConfigurationError, DataQualityError, SygnifyError, UnsupportedOperationError
from sygnify.io.untrusted import READ_ERRORS, validated
from sygnify.plugins import PluginContext, SharedClientPool
from sygnify.resilience import CircuitBreaker, Resilience, RetryPolicy

__all__ = [
    "BaseConnector",
    "Capability",
    "Connector",
    "HealthStatus",
    "QueryParams",
    "WriteMode",
    "WriteResult",
]

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)
#: What Polars raises for files whose schemas disagree (see ``_guarded_scan``).
_POLARS_SCHEMA_ERRORS = (pl.exceptions.SchemaError, pl.exceptions.ColumnNotFoundError)
R = TypeVar("R")
C = TypeVar("C")

#: capability method name -> the capability it belongs to
_METHOD_CAPABILITY = {
    method: capability for capability, methods in CAPABILITY_METHODS.items() for method in methods
}


def _capabilities_of(cls: type) -> frozenset[Capability]:
    """The capabilities whose methods ``cls`` has (for a connector that declares none)."""
    return frozenset(
        capability
        for capability, methods in CAPABILITY_METHODS.items()
        if all(callable(getattr(cls, method, None)) for method in methods)
    )


class BaseConnector(abc.ABC, Generic[ConfigT]):
    """Shared machinery for connectors: config validation, resilience, error translation.

    A connector subclasses this, sets ``type_name``, ``config_model`` and
    ``capabilities``, implements the methods of those capabilities and
    ``_check_health()``, and overrides ``_translate()`` to map its SDK's exceptions onto
    :mod:`sygnify.errors`. A connector class that declares no ``capabilities`` gets those
    whose methods it has. Looking up the method of a capability the connector lacks
    raises :class:`~sygnify.errors.UnsupportedOperationError` naming both, with
    ``unsupported_hint`` saying what to do instead.

    It is built by ``from_config(config, *, context)`` (the plugin contract of
    :mod:`sygnify.plugins`), or directly with a validated config.
    """

    type_name: ClassVar[str] = ""
    config_model: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: What to do instead when an unsupported method is asked for.
    unsupported_hint: ClassVar[str] = (
        "use a connector that has it (CloudDataConnector.available() lists them), "
        "or check connection.supports(...) first"
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        owner = next(klass for klass in cls.__mro__ if "capabilities" in vars(klass))
        if owner is BaseConnector or vars(owner).get("_capabilities_inferred", False):
            cls.capabilities = _capabilities_of(cls)
            cls._capabilities_inferred = True
        missing = [
            f"{capability.value} needs {method}()"
            for capability in cls.capabilities
            for method in CAPABILITY_METHODS[capability]
            if not callable(getattr(cls, method, None))
        ]
        if missing:
            raise ConfigurationError(
                f"connector class {cls.__qualname__} declares capabilities it does not implement: "
                f"{'; '.join(sorted(missing))}; add the methods or drop them from capabilities",
                resource=cls.type_name or cls.__qualname__,
            )

    _capabilities_inferred: ClassVar[bool] = False

    def __init__(self, config: ConfigT, *, name: str | None = None, pool: SharedClientPool | None = None):
        self.config = config
        self.name = name or self.type_name
        self._pool: SharedClientPool = pool if pool is not None else ClientPool()
        self._resilience = config.resilience(f"{self.type_name}:{self.name}")
        self._closed = False
        self._shared_keys: list[str] = []

    def _shared(
        self,
        factory: Callable[[], C],
        close: Callable[[C], None],
        *,
        exclude: Iterable[str] = (),
        key: str | None = None,
    ) -> C:
        """The SDK client for this connection's configuration, shared with every connection of the
        same configuration through the pool, and released by :meth:`close`.

        The pool key is the config's fingerprint without the resilience settings (``retry``,
        ``breaker``) and ``exclude`` (options that do not change the client); ``key`` replaces
        it where the client depends on more than the config.
        """
        if key is None:
            fingerprint = config_fingerprint(self.config, exclude=frozenset({"retry", "breaker", *exclude}))
            key = f"{self.type_name}:{fingerprint}"
        client = self._pool.acquire(key, factory, close)
        self._shared_keys.append(key)
        return client

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any], *, context: PluginContext) -> Self:
        """Build the connection ``context.name`` from its config (a ``config_model`` or a mapping).

        ``context.pool`` shares SDK clients with other connections of the same configuration.
        """
        validated = validate_config(
            cls.config_model, config, context=f"{cls.type_name} connection {context.name!r}"
        )
        return cls(validated, name=context.name, pool=context.pool)  # type: ignore[arg-type]

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], *, name: str | None = None, pool: ClientPool | None = None
    ) -> Self:
        """Deprecated: use :meth:`from_config` (this delegates to it, for one release)."""
        warnings.warn(
            f"{cls.__qualname__}.from_options(options, name=, pool=) is deprecated; use "
            "from_config(options, context=PluginContext(name, pool=pool))",
            DeprecationWarning,
            stacklevel=2,
        )
        return cls.from_config(options, context=PluginContext(name or cls.type_name, pool=pool))

    def supports(self, capability: Capability | str) -> bool:
        """Whether this connection can do ``capability`` (``"readable"``, ``Capability.WRITABLE``...)."""
        try:
            return Capability(capability) in self.capabilities
        except ValueError:
            raise ConfigurationError(
                f"unknown capability {capability!r}; capabilities are "
                f"{', '.join(c.value for c in Capability)}",
                resource=str(capability),
            ) from None

    def __getattr__(self, attribute: str) -> NoReturn:
        # Only reached when normal lookup fails: a capability method the class does not have.
        capability = _METHOD_CAPABILITY.get(attribute)
        if capability is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")
        name = vars(self).get("name", self.type_name)
        declared = ", ".join(sorted(c.value for c in self.capabilities)) or "none"
        raise UnsupportedOperationError(
            f"{self.type_name} connection {name!r} does not support {attribute}(): it is not "
            f"{capability.value} (its capabilities: {declared}); {self.unsupported_hint}",
            resource=name,
            capability=capability.value,
            operation=attribute,
            connector=self.type_name,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        """This connection's circuit breaker (state, listeners)."""
        return self._resilience.breaker

    @property
    def retry_policy(self) -> RetryPolicy:
        """This connection's retry policy (what libraries reading on their own are bounded by)."""
        return self._resilience.retry

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
        A call made inside another ``_call`` on the same thread (a listing inside ``open
        dataset``) is part of that operation: one attempt, no outcome of its own on the breaker;
        the outer call retries and counts (:class:`~sygnify.resilience.Resilience`).
        """
        self._ensure_open()

        def attempt() -> R:
            try:
                return fn(*args, **kwargs)
            except SygnifyError:
                raise
            except READ_ERRORS as exc:
                raise self._translated(exc, operation=operation, resource=resource) from exc

        started = time.perf_counter()
        try:
            result = (self._resilience if resilience is None else resilience).call(attempt)
        except SygnifyError as exc:
            self._emit_call(operation, "error", type(exc).__name__, started)
            raise
        self._emit_call(operation, "ok", None, started)
        return result

    def _resumable(
        self,
        operation: str,
        open_from: Callable[[C | None], Iterator[tuple[R, C]]],
        *,
        resource: str | None = None,
    ) -> Iterator[R]:
        """Yield a stream's items with the connection's retry policy and breaker, resuming after
        a transient failure from the last checkpoint (:meth:`Resilience.resume`), errors translated.

        ``open_from(checkpoint)`` yields ``(item, checkpoint)`` pairs; nothing already yielded is
        yielded again.
        """
        self._ensure_open()
        started = time.perf_counter()

        def translate(exc: Exception) -> BaseException:
            return self._translate(exc, operation=operation, resource=resource)

        try:
            yield from self._resilience.resume(open_from, translate=translate)
        except SygnifyError as exc:
            self._emit_call(operation, "error", type(exc).__name__, started)
            raise
        self._emit_call(operation, "ok", None, started)

    def _translate_stream(
        self, batches: Iterator[pa.RecordBatch], source: str, *, validate: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """Pass ``batches`` through, translating an error raised mid-stream (as a ``stream`` error).

        With ``validate`` (connectors that decode files: data from strangers), every batch
        passes ``validate(full=True)`` (:func:`sygnify.io.untrusted.validated`, ~6% of a
        Parquet read): a batch whose offsets or text point outside its buffers is a
        :class:`~sygnify.errors.DataQualityError`, never handed to the caller. Errors are
        translated but not retried here (a restart would repeat rows the
        caller already has): a stream that can resume goes through :meth:`_resumable`.
        """
        try:
            yield from validated(batches, source) if validate else batches
        except SygnifyError:
            raise
        except READ_ERRORS as exc:
            raise self._translated(exc, operation="stream", resource=source) from exc

    def _guarded_scan(
        self, frame: pl.LazyFrame, *, resource: str | None, diagnose: Callable[[], object] | None = None
    ) -> pl.LazyFrame:
        """``frame`` (a library's native lazy scan) whose collection goes through this
        connection's circuit breaker and error translation.

        Polars reads the data when the frame is collected, outside any sygnify call; as a
        Polars IO source that runs the native scan (columns, predicate and row limit pushed
        into it), its failures are sygnify errors (a :class:`~sygnify.errors.TransientError`
        for an outage) and count on the breaker, which refuses collection while open. The
        retries stay the library's own, bounded by the policy (its storage options).
        ``diagnose()`` runs when Polars refuses the data's schema, to raise a precise
        :class:`~sygnify.errors.SchemaError` (which file, which column) instead.
        """
        schema = frame.collect_schema()
        breaker = self.breaker

        def source(
            with_columns: list[str] | None,
            predicate: pl.Expr | None,
            n_rows: int | None,
            batch_size: int | None,
        ) -> Iterator[pl.DataFrame]:
            query = frame if predicate is None else frame.filter(predicate)
            if with_columns is not None:
                query = query.select(with_columns)
            if n_rows is not None:
                query = query.head(n_rows)
            self._ensure_open()
            started = time.perf_counter()
            try:
                with breaker.guarding():
                    try:
                        yield from query.collect_batches()
                    except SygnifyError:
                        raise
                    except READ_ERRORS as exc:
                        if diagnose is not None and isinstance(exc, _POLARS_SCHEMA_ERRORS):
                            diagnose()  # raises the SchemaError that names the file
                        raise self._translated(exc, operation="scan", resource=resource) from exc
            except SygnifyError as exc:
                self._emit_call("scan", "error", type(exc).__name__, started)
                raise
            self._emit_call("scan", "ok", None, started)

        return register_io_source(source, schema=schema, explain_name=f"sygnify {self.type_name} scan")

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

    def _translated(self, exc: BaseException, *, operation: str, resource: str | None) -> SygnifyError:
        """:meth:`_translate`, except for a Polars panic (a Rust ``unwrap`` on malformed data,
        a ``BaseException``): a :class:`~sygnify.errors.DataQualityError`."""
        if isinstance(exc, Exception):
            return self._translate(exc, operation=operation, resource=resource)
        return DataQualityError(
            f"{self.type_name} {operation} failed: the reader gave up on malformed data ({exc})",
            resource=resource,
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
        """Release this connection's shared clients (the last user of one closes it); idempotent."""
        if not self._closed:
            keys, self._shared_keys = self._shared_keys, []
            for key in keys:
                self._pool.release(key)
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
