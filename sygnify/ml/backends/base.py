"""The contract every model backend implements, and what it is given to work with.

A backend is a plugin like any other (:mod:`sygnify.plugins`): a pydantic
``config_model`` and ``from_config(config, *, context)``, whose context names the model
and carries the pooled HTTP clients and the injectable clock, sleep and random source.
"""

from __future__ import annotations

import abc
import dataclasses
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError
from typing_extensions import Self

from sygnify.config import validate_config
from sygnify.errors import ConfigurationError, PluginNotFoundError
from sygnify.ml.signature import Signature
from sygnify.plugins import BUILTINS, GROUPS, PluginContext, warn_legacy_factory

__all__ = [
    "BackendConfig",
    "BackendContext",
    "BackendOutput",
    "HttpClients",
    "ModelBackend",
    "TrustFlag",
    "require_bool",
]


def _not_a_bool(value: object) -> str:
    return (
        f"must be True or False, got {type(value).__name__}; only a real bool is accepted, because "
        "a string such as 'false' would count as true"
    )


def require_bool(value: object, *, name: str) -> bool:
    """``value`` if it is a real ``bool``, else a :class:`~sygnify.errors.ConfigurationError`.

    For options that guard running code (``trusted``): ``bool("false")`` is true, so
    nothing but ``True`` or ``False`` is taken.

    >>> require_bool(False, name="trusted")
    False
    >>> require_bool("false", name="trusted")
    Traceback (most recent call last):
        ...
    sygnify.errors.ConfigurationError: trusted must be True or False, got str; only a real bool ...
    """
    if isinstance(value, bool):
        return value
    raise ConfigurationError(f"{name} {_not_a_bool(value)}", resource=name)


def _strict_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise PydanticCustomError("bool_required", _not_a_bool(value))


#: A config field that takes only ``True`` or ``False`` (pydantic would read ``"false"``,
#: ``"no"``, ``0`` as booleans): the type of every ``trusted`` option.
TrustFlag = Annotated[bool, BeforeValidator(_strict_bool)]


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


@dataclass(frozen=True)
class BackendContext(PluginContext):
    """Deprecated: a backend is built with a :class:`~sygnify.plugins.PluginContext`.

    Kept for one release for code that builds backends with the old
    ``from_options(options, name=, context=BackendContext(...))``; ``name`` may be left
    out here.
    """

    name: str = ""


class BackendConfig(BaseModel):
    """Options every model backend takes; each backend's config subclasses this.

    ``features`` (names, ``Feature`` objects, ``{name: kind}`` or a ready ``Signature``)
    fixes the model's inputs and their order; ``extra_features`` says whether other
    columns are an error or ignored.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, protected_namespaces=()
    )

    features: Signature | Sequence[Any] | Mapping[str, Any] | None = None
    extra_features: Literal["error", "ignore"] = "error"


class ModelBackend(abc.ABC):
    """A loaded model (in-process) or a client for a served one (remote).

    Subclasses set ``backend_name`` and ``config_model``, build themselves from the
    validated config in :meth:`_build` (called by :meth:`from_config`) and implement
    :meth:`predict` on a table whose columns are exactly the model's features, in order.
    :meth:`predict_row` is the single-record fast path; override it where a backend can
    skip Arrow for one row.
    """

    backend_name: ClassVar[str] = "backend"
    config_model: ClassVar[type[BackendConfig]] = BackendConfig
    #: whether errors of this backend should open a breaker and trigger fallbacks
    remote: ClassVar[bool] = False

    def __init__(self, *, signature: Signature | None, model_name: str) -> None:
        self.signature = signature
        self.model_name = model_name

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any], *, context: PluginContext) -> Self:
        """Build the backend of model ``context.name`` from its config (a ``config_model`` or mapping)."""
        if cls._legacy():
            warn_legacy_factory(
                "model backend", cls.backend_name, cls, "from_options(options, name=, context=)"
            )
            options = config.model_dump() if isinstance(config, BaseModel) else dict(config)
            legacy = BackendContext(**{f.name: getattr(context, f.name) for f in dataclasses.fields(context)})
            return cls.from_options(options, name=context.name, context=legacy)  # type: ignore[return-value]
        validated = validate_config(
            cls.config_model, config, context=f"{cls.backend_name} model {context.name!r}"
        )
        try:
            return cls._build(validated, context)
        except ImportError as exc:
            raise cls.missing_runtime(exc, context.name) from exc

    @classmethod
    def missing_runtime(cls, exc: ImportError, model: str) -> PluginNotFoundError:
        """The error for a backend whose runtime (torch, onnxruntime, boto3...) is not installed.

        Backends import their runtime when a model is built (:meth:`_build`), so that
        importing the backend costs nothing; :meth:`from_config` turns an ``ImportError``
        there into this error, which names the pip extra to install.

        >>> from sygnify.ml.backends.torch import TorchBackend
        >>> print(TorchBackend.missing_runtime(ModuleNotFoundError(name="torch"), "m"))
        torch model 'm' needs 'torch', which is not installed: pip install 'sygnify[torch]'
        """
        builtins = BUILTINS["model"]
        entry = builtins.get(cls.backend_name)
        extra = entry[1] if entry is not None else None
        package = exc.name or str(exc)
        install = f"pip install 'sygnify[{extra}]'" if extra else f"install {package!r}"
        return PluginNotFoundError(
            f"{cls.backend_name} model {model!r} needs {package!r}, which is not installed: {install}",
            group=GROUPS["model"],
            name=cls.backend_name,
            available=sorted(builtins),
            extra=extra,
        )

    @classmethod
    def _build(cls, config: Any, context: PluginContext) -> Self:
        """Make the backend from its validated ``config_model`` instance (what subclasses implement)."""
        raise ConfigurationError(
            f"model backend {cls.__qualname__} implements neither _build(config, context) nor the "
            "legacy from_options(options, name=, context=)",
            resource=cls.backend_name,
        )

    @classmethod
    def _legacy(cls) -> bool:
        """Whether this subclass only has the old ``from_options`` factory."""
        below = [
            klass for klass in cls.__mro__ if klass is not ModelBackend and issubclass(klass, ModelBackend)
        ]
        return any("from_options" in vars(k) for k in below) and not any("_build" in vars(k) for k in below)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, name: str, context: BackendContext) -> ModelBackend:
        """Deprecated: use :meth:`from_config` (this delegates to it, for one release)."""
        warnings.warn(
            f"{cls.__qualname__}.from_options(options, name=, context=) is deprecated; use "
            "from_config(options, context=PluginContext(name, http=..., clock=...))",
            DeprecationWarning,
            stacklevel=2,
        )
        return cls.from_config(options, context=dataclasses.replace(context, name=name))

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


def signature_from(config: BackendConfig, fallback: Sequence[str] | None = None) -> Signature | None:
    """The signature given by ``features``/``extra_features``, else one from ``fallback`` names."""
    features = config.features
    if isinstance(features, Signature):
        return features
    if features is not None:
        return Signature.of(features, extra=config.extra_features)
    if fallback is not None:
        return Signature.of(list(fallback), extra=config.extra_features)
    return None
