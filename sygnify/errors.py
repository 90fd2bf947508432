"""The sygnify error tree.

Every exception sygnify raises derives from :class:`SygnifyError`. SDK exceptions are
translated at the plugin boundary, so user code can catch one family of errors whatever
the backend::

    >>> from sygnify.errors import NotFoundError, SygnifyError
    >>> try:
    ...     raise NotFoundError("no such object", resource="s3://bucket/key")
    ... except SygnifyError as exc:
    ...     print(type(exc).__name__, exc.resource)
    NotFoundError s3://bucket/key

Only :class:`TransientError` (and its subclasses) is retried by
:class:`sygnify.resilience.RetryPolicy`. The tree::

    SygnifyError
    ├── ConfigurationError
    │   ├── PluginNotFoundError
    │   └── UnsupportedOperationError  (also an AttributeError)
    ├── AuthenticationError
    ├── PermissionDeniedError
    │   └── PathEscapeError
    ├── NotFoundError
    │   ├── BucketNotFoundError
    │   └── ObjectNotFoundError
    ├── TransientError                 (retried)
    │   ├── ConnectionFailedError
    │   ├── OperationTimeoutError
    │   │   └── StatementTimeoutError  (not retried)
    │   └── ThrottledError
    ├── CircuitOpenError
    ├── ConcurrentRunError
    │   └── PartitionsRevokedError     (Kafka: a checkpointed stream's partitions moved)
    ├── SourceClosedError
    ├── JobFailedError
    ├── QueryError
    ├── SchemaError
    ├── DataQualityError
    ├── MemoryBudgetError
    └── ModelError

Asking a connection for something it cannot do is a mistake in the calling code, not a
failure of the service, so :class:`UnsupportedOperationError` is a
:class:`ConfigurationError`::

    >>> from sygnify.errors import ConfigurationError, UnsupportedOperationError
    >>> issubclass(UnsupportedOperationError, ConfigurationError)
    True
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthenticationError",
    "BucketNotFoundError",
    "CircuitOpenError",
    "ConcurrentRunError",
    "ConfigurationError",
    "ConnectionFailedError",
    "DataQualityError",
    "JobFailedError",
    "MemoryBudgetError",
    "ModelError",
    "NotFoundError",
    "ObjectNotFoundError",
    "OperationTimeoutError",
    "PartitionsRevokedError",
    "PathEscapeError",
    "PermissionDeniedError",
    "PluginNotFoundError",
    "QueryError",
    "SchemaError",
    "SourceClosedError",
    "StatementTimeoutError",
    "SygnifyError",
    "ThrottledError",
    "TransientError",
    "UnsupportedOperationError",
]


class SygnifyError(Exception):
    """Base class of every error sygnify raises.

    ``resource`` names the input the error is about (a path, table, model...), so a
    message never needs to be parsed to find it. The original SDK exception, when there
    is one, is kept as ``__cause__``.
    """

    def __init__(self, message: str, *, resource: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.resource = resource


class ConfigurationError(SygnifyError):
    """Invalid or missing configuration (unknown option, wrong type, missing field)."""


class PluginNotFoundError(ConfigurationError):
    """No plugin of that name, or its optional dependencies are not installed."""

    def __init__(
        self,
        message: str,
        *,
        group: str,
        name: str,
        available: list[str],
        extra: str | None = None,
    ) -> None:
        super().__init__(message, resource=name)
        self.group = group
        self.name = name
        self.available = available
        self.extra = extra


class UnsupportedOperationError(ConfigurationError, AttributeError):
    """A connection was asked for an operation its connector does not support.

    ``capability`` names what is missing (``"queryable"``, ``"writable"``...), ``operation``
    the method asked for and ``connector`` the connector type. It is raised when the
    method is looked up, and is also an :class:`AttributeError`, so ``hasattr()``,
    ``getattr(obj, name, default)`` and ``isinstance(conn, Queryable)`` answer "no"
    instead of raising.
    """

    def __init__(
        self,
        message: str,
        *,
        resource: str | None = None,
        capability: str,
        operation: str,
        connector: str,
    ) -> None:
        super().__init__(message, resource=resource)
        self.capability = capability
        self.operation = operation
        self.connector = connector


class AuthenticationError(SygnifyError):
    """Credentials are missing, invalid or expired."""


class PermissionDeniedError(SygnifyError):
    """Authenticated, but not allowed to do this."""


class PathEscapeError(PermissionDeniedError):
    """A path resolves outside the root a connector is confined to."""


class NotFoundError(SygnifyError):
    """A file, object, bucket, table or model does not exist."""


class BucketNotFoundError(NotFoundError):
    """The bucket (S3) or container (Azure) does not exist."""


class ObjectNotFoundError(NotFoundError):
    """No object with that key, or no object matches a prefix or glob."""


class TransientError(SygnifyError):
    """A failure that may succeed if retried (network blip, 5xx, throttling).

    ``retryable`` is False for the kinds a retry would only repeat at a cost
    (:class:`StatementTimeoutError`).
    """

    retryable: bool = True


class ConnectionFailedError(TransientError):
    """The service could not be reached, or the connection dropped."""


class OperationTimeoutError(TransientError):
    """An operation did not finish within its time limit."""


class StatementTimeoutError(OperationTimeoutError):
    """A query ran for its whole time limit and the database cancelled it.

    Never retried, and not counted as an outage by the circuit breaker: a retry would run
    (and bill) the same statement for as long again. Raise the limit or make the query
    cheaper.

    >>> StatementTimeoutError("ran past 60 s").retryable
    False
    """

    retryable = False


class ThrottledError(TransientError):
    """The service asked to slow down (HTTP 429/503, SlowDown, rate limits).

    ``retry_after`` is the delay in seconds the service asked for, when it said.
    """

    def __init__(
        self, message: str, *, resource: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, resource=resource)
        self.retry_after = retry_after


class CircuitOpenError(SygnifyError):
    """A circuit breaker is open: calls are refused until it may recover.

    ``retry_at`` is the breaker clock's time at which a trial call is allowed again.
    """

    def __init__(self, message: str, *, resource: str | None = None, retry_at: float) -> None:
        super().__init__(message, resource=resource)
        self.retry_at = retry_at


class ConcurrentRunError(SygnifyError):
    """Another run holds what this one needs alone (an incremental job's checkpoint)."""


class PartitionsRevokedError(ConcurrentRunError):
    """Another consumer of the Kafka group took partitions this source read, and the source's
    consumer keeps state per partition (``on_rebalance="raise"``, a checkpointed stream).

    What was acknowledged is committed; what was read since is not, and the new owner reads
    it. ``partitions`` names the partitions that moved ("topic/partition").
    """

    def __init__(self, message: str, *, resource: str | None = None, partitions: Sequence[str] = ()) -> None:
        super().__init__(message, resource=resource)
        self.partitions = list(partitions)


class SourceClosedError(SygnifyError):
    """A stream source was closed before a batch of it was acknowledged.

    Nothing of that batch was acknowledged: the server delivers it again to the next run
    (at-least-once), so a caller must not count it as processed.
    """


class JobFailedError(SygnifyError):
    """A remote job (a pipeline run, a warehouse job) ended failed or cancelled."""


class QueryError(SygnifyError):
    """A query is invalid (syntax, unknown column, bad parameter)."""


class SchemaError(SygnifyError):
    """Data does not have the expected schema (missing column, wrong type)."""


class DataQualityError(SygnifyError):
    """Data cannot be parsed or violates a rule (malformed CSV row, corrupt file)."""


class MemoryBudgetError(SygnifyError):
    """Work cannot be done within the configured memory budget."""


class ModelError(SygnifyError):
    """A model could not be loaded, or failed to predict."""
