"""The contract every model backend implements, and what it is given to work with."""

from __future__ import annotations

import abc
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from sygnify.errors import ConfigurationError
from sygnify.ml.signature import Signature

__all__ = ["BackendContext", "BackendOutput", "HttpClients", "ModelBackend"]


@dataclass
class BackendOutput:
    """What a backend returns for a batch: one prediction per row, probabilities if known.

    ``probabilities`` is a ``(rows, classes)`` array and ``classes`` its column labels.
    """

    predictions: np.ndarray[Any, Any] | Sequence[Any]
    probabilities: np.ndarray[Any, Any] | None = None
    classes: Sequence[Any] | None = None


class HttpClients:
    """One pooled :class:`httpx.Client` per TLS setting, shared by every remote backend.

    Connection pooling, keep-alive and HTTP limits live in the client; per-request timeouts
    are passed on each call. A client given at construction (tests pass one with an
    ``httpx.MockTransport``) is used for everything and never closed here.
    """

    def __init__(self, client: Any | None = None, *, max_connections: int = 100) -> None:
        self._given = client
        self._max_connections = max_connections
        self._clients: dict[bool, Any] = {}
        self._lock = threading.Lock()

    def get(self, *, verify: bool = True) -> Any:
        if self._given is not None:
            return self._given
        with self._lock:
            client = self._clients.get(verify)
            if client is None:
                import httpx

                limits = httpx.Limits(
                    max_connections=self._max_connections, max_keepalive_connections=self._max_connections
                )
                client = httpx.Client(verify=verify, limits=limits, follow_redirects=False)
                self._clients[verify] = client
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


@dataclass
class BackendContext:
    """Shared services a backend is built with: the HTTP pool and injectable clock/sleep/rng."""

    http: HttpClients = field(default_factory=HttpClients)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)


class ModelBackend(abc.ABC):
    """A loaded model (in-process) or a client for a served one (remote).

    Subclasses set ``backend_name``, build themselves in :meth:`from_options` and implement
    :meth:`predict` on a table whose columns are exactly the model's features, in order.
    :meth:`predict_row` is the single-record fast path; override it where a backend can
    skip Arrow for one row.
    """

    backend_name: ClassVar[str] = "backend"
    #: whether errors of this backend should open a breaker and trigger fallbacks
    remote: ClassVar[bool] = False

    def __init__(self, *, signature: Signature | None, model_name: str) -> None:
        self.signature = signature
        self.model_name = model_name

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Mapping[str, Any], *, name: str, context: BackendContext) -> ModelBackend:
        """Build the backend for model ``name`` from its ``register(**config)`` options."""

    @abc.abstractmethod
    def predict(self, features: pa.Table) -> BackendOutput:
        """Predictions for every row of ``features``."""

    def predict_row(self, values: list[Any]) -> tuple[Any, np.ndarray[Any, Any] | None]:
        """The prediction (and probabilities) for one record given as values in feature order."""
        names = self.signature.names if self.signature else [f"f{i}" for i in range(len(values))]
        table = pa.table({name: [value] for name, value in zip(names, values)})
        out = self.predict(table)
        proba = out.probabilities[0] if out.probabilities is not None else None
        return out.predictions[0], proba

    def ready(self) -> bool:
        """Whether the model can take predictions now."""
        return True

    def metadata(self) -> dict[str, Any]:
        """What the backend knows about the model (inputs, outputs, versions...)."""
        return {"backend": self.backend_name}

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release resources (sessions, connections)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_name!r})"


def reject_unknown(options: Mapping[str, Any], allowed: set[str], *, backend: str) -> None:
    """Refuse options a backend does not know (typos must not pass silently)."""
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigurationError(
            f"{backend} backend does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(allowed))}",
            resource=backend,
        )


def signature_from(options: Mapping[str, Any], fallback: Sequence[str] | None = None) -> Signature | None:
    """The signature given by ``features=``/``extra_features=``, else one from ``fallback`` names."""
    features = options.get("features")
    extra = options.get("extra_features", "error")
    if extra not in ("error", "ignore"):
        raise ConfigurationError(f"extra_features must be 'error' or 'ignore', got {extra!r}")
    if isinstance(features, Signature):
        return features
    if features is not None:
        return Signature.of(features, extra=extra)
    if fallback is not None:
        return Signature.of(list(fallback), extra=extra)
    return None


#: options every backend accepts (handled by RealTimeML / signature_from)
COMMON_OPTIONS = {"features", "extra_features"}
