"""The plugin contract: one factory shape, one table of built-ins, entry points for third parties.

Connectors, executors, model backends and stream sources are all built the same way: a
plugin class has a pydantic ``config_model`` and a classmethod
``from_config(config, *, context)``, where ``config`` is that model (or a mapping
validated into it: TOML sections and keyword arguments go through the same model) and
``context`` is a :class:`PluginContext` with the instance's name and the resources it may
share (a client pool, pooled HTTP clients, an injectable clock).

sygnify's own plugins are listed in :data:`BUILTINS` (``{kind: {name: (target, extra)}}``),
so they are found even from a plain checkout without installed metadata, and each is
imported only when asked for. Third parties add plugins through an entry point in their
distribution's metadata, e.g. in a plugin's ``pyproject.toml``::

    [project.entry-points."sygnify.connectors"]
    myservice = "my_package.connector:MyServiceConnector"

or with ``register()`` in code (handy in notebooks and tests)::

    >>> registry: Registry[type] = Registry("sygnify.examples", kind="example")
    >>> registry.register("dict", dict)
    >>> registry.load("dict") is dict
    True
    >>> "dict" in registry.names()
    True

Precedence, for one name: a plugin ``register()``-ed in code, then the built-in, then an
entry point. An entry point of another distribution that reuses a built-in's name for
another target is ignored with a warning (installing a package never silently replaces
one of sygnify's plugins); to replace a built-in on purpose, ``register()`` it under that
name. sygnify declares no entry points for its own plugins: the table is the one list of
built-ins (an older installed sygnify's entry points add nothing to it).

    >>> BUILTINS["connector"]["local"]
    ('sygnify.connectors.local:LocalConnector', None)
    >>> Registry(GROUPS["source"], kind="stream source", entry_points=False).names()
    ['kafka', 'mqtt', 'nats', 'redis']
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import random
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from sygnify.config import config_kwargs, validate_config
from sygnify.errors import ConfigurationError, PluginNotFoundError

__all__ = [
    "BUILTINS",
    "GROUPS",
    "LegacyFactory",
    "PluginContext",
    "PluginFactory",
    "PluginInfo",
    "Registry",
    "SharedClientPool",
    "SharedHttpClients",
    "build_from_kwargs",
    "discover",
    "warn_legacy_factory",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
C = TypeVar("C")

#: Entry-point groups sygnify reads, by the kind of plugin they hold.
GROUPS: Mapping[str, str] = {
    "connector": "sygnify.connectors",
    "executor": "sygnify.executors",
    "model": "sygnify.models",
    "source": "sygnify.sources",
}

#: sygnify's own plugins: ``{kind: {name: ("module:attribute", pip extra or None)}}``.
BUILTINS: Mapping[str, Mapping[str, tuple[str, str | None]]] = {
    "connector": {
        "local": ("sygnify.connectors.local:LocalConnector", None),
        "s3": ("sygnify.connectors.s3:S3Connector", "s3"),
        "azure_blob": ("sygnify.connectors.azure_blob:AzureBlobConnector", "azure"),
        "bigquery": ("sygnify.connectors.bigquery:BigQueryConnector", "bigquery"),
        "snowflake": ("sygnify.connectors.snowflake:SnowflakeConnector", "snowflake"),
        "mongodb": ("sygnify.connectors.mongodb:MongoDBConnector", "mongodb"),
        "postgres": ("sygnify.connectors.postgres:PostgresConnector", "postgres"),
        "azure_data_factory": ("sygnify.orchestrators.azure_data_factory:AzureDataFactoryConnector", "adf"),
    },
    "executor": {
        "local": ("sygnify.processing.executors.local:ThreadExecutor", None),
        "threads": ("sygnify.processing.executors.local:ThreadExecutor", None),
        "processes": ("sygnify.processing.executors.local:ProcessExecutor", None),
        "dask": ("sygnify.processing.executors.dask:DaskExecutor", "dask"),
        "ray": ("sygnify.processing.executors.ray:RayExecutor", "ray"),
    },
    "model": {
        "callable": ("sygnify.ml.backends.callable:CallableBackend", None),
        "sklearn": ("sygnify.ml.backends.sklearn:SklearnBackend", "sklearn"),
        "onnx": ("sygnify.ml.backends.onnx:OnnxBackend", "onnx"),
        "torch": ("sygnify.ml.backends.torch:TorchBackend", "torch"),
        "tfserving": ("sygnify.ml.backends.tfserving:TFServingBackend", "serving"),
        "kserve_v2": ("sygnify.ml.backends.kserve_v2:KServeV2Backend", "serving"),
        "torchserve": ("sygnify.ml.backends.torchserve:TorchServeBackend", "serving"),
        "sagemaker": ("sygnify.ml.backends.sagemaker:SageMakerBackend", "sagemaker"),
        "vertex": ("sygnify.ml.backends.vertex:VertexBackend", "vertex"),
        "azureml": ("sygnify.ml.backends.azureml:AzureMLBackend", "azureml"),
    },
    "source": {
        "kafka": ("sygnify.streams.kafka:KafkaSource", "kafka"),
        "redis": ("sygnify.streams.redis:RedisSource", "redis"),
        "nats": ("sygnify.streams.nats:NatsSource", "nats"),
        "mqtt": ("sygnify.streams.mqtt:MqttSource", "mqtt"),
    },
}

_KIND_OF_GROUP = {group: kind for kind, group in GROUPS.items()}


class SharedClientPool(Protocol):
    """What a context's ``pool`` does (:class:`sygnify.connectors.ClientPool` is the one sygnify has).

    Described here rather than imported, because the plugin contract sits below the
    connectors in the layers.
    """

    def acquire(self, key: str, factory: Callable[[], C], close: Callable[[C], None] | None = None) -> C:
        """The client for ``key``, made by ``factory()`` if there is none yet."""
        ...

    def release(self, key: str) -> None:
        """Give a client back; the last release closes it."""
        ...


class SharedHttpClients(Protocol):
    """What a context's ``http`` does (:class:`sygnify.ml.backends.HttpClients` is sygnify's)."""

    def get(self, *, verify: bool = True) -> Any:
        """The pooled ``httpx.Client`` for this TLS setting."""
        ...

    def close(self) -> None:
        """Close the pooled clients."""
        ...


@dataclass(frozen=True)
class PluginContext:
    """What a plugin instance is built with besides its config: its name and shared resources.

    ``pool`` (connectors; a :class:`~sygnify.connectors.ClientPool`) shares SDK clients
    between connections of the same configuration; ``http`` (remote model backends; an
    :class:`~sygnify.ml.backends.HttpClients`) shares pooled HTTP clients. A plugin given
    ``None`` makes its own. ``clock``, ``sleep`` and ``rng`` are injectable so
    retries, breakers and polling are testable without waiting.

    >>> PluginContext("lake").name
    'lake'
    """

    name: str
    pool: SharedClientPool | None = None
    http: SharedHttpClients | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)


class PluginFactory(Protocol[T_co]):
    """What a registry loads: a class whose ``from_config`` builds an instance."""

    def from_config(self, config: BaseModel | Mapping[str, Any], *, context: PluginContext) -> T_co: ...


def build_from_kwargs(
    factory: Callable[..., T], model: type[BaseModel], config: BaseModel | Mapping[str, Any], *, what: str
) -> T:
    """``factory(**fields)`` of ``config`` validated by ``model`` (for plugins whose constructor
    takes keyword arguments: sources, executors). ``what`` names the plugin in errors.

    >>> from pydantic import BaseModel
    >>> class Pair(BaseModel):
    ...     left: int
    ...     right: int = 0
    >>> build_from_kwargs(dict, Pair, {"left": "1"}, what="pair")
    {'left': 1, 'right': 0}
    """
    return factory(**config_kwargs(validate_config(model, config, context=what)))


@dataclass(frozen=True)
class LegacyFactory(Generic[T]):
    """A plugin with only its kind's old factory, behind ``from_config`` (for one release).

    ``call(plugin, options, context)`` builds it the old way from the plain options.
    """

    plugin: Any
    call: Callable[[Any, dict[str, Any], PluginContext], T]

    def from_config(self, config: BaseModel | Mapping[str, Any], *, context: PluginContext) -> T:
        options = config_kwargs(config) if isinstance(config, BaseModel) else dict(config)
        return self.call(self.plugin, options, context)


def warn_legacy_factory(kind: str, name: str, plugin: object, shape: str) -> None:
    """Warn that plugin ``name`` is built through its legacy factory ``shape`` (one release left)."""
    warnings.warn(
        f"{kind} plugin {name!r} ({getattr(plugin, '__qualname__', repr(plugin))}) has no "
        f"from_config(config, *, context) and is built through its legacy {shape}; that still works "
        "in this release only: give it a pydantic config_model and from_config (subclassing "
        "sygnify's base class for the kind gives both)",
        DeprecationWarning,
        stacklevel=3,
    )


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin comes from, without importing it."""

    name: str
    target: str
    distribution: str | None


def discover(group: str) -> dict[str, PluginInfo]:
    """Entry points of ``group`` in the current environment, by name (nothing imported)."""
    found: dict[str, PluginInfo] = {}
    for entry_point in importlib.metadata.entry_points(group=group):
        dist = entry_point.dist.name if entry_point.dist is not None else None
        found[entry_point.name] = PluginInfo(entry_point.name, entry_point.value, dist)
    return found


def _import_target(target: str) -> object:
    module_name, _, attribute = target.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """A lazily loaded, cached set of named plugins of one kind.

    ``builtins`` (default: this group's entry of :data:`BUILTINS`) are known without any
    installed metadata, and say which pip extra installs each one's dependencies, so a
    miss can say exactly what to install. ``entry_points=False`` ignores installed entry
    points (only built-ins and ``register()``). ``validate`` checks (and narrows) what a
    target loads, so a broken plugin fails with a clear error.
    """

    def __init__(
        self,
        group: str,
        *,
        kind: str,
        builtins: Mapping[str, tuple[str, str | None]] | None = None,
        entry_points: bool = True,
        validate: Callable[[str, object], T] | None = None,
    ) -> None:
        self.group = group
        self.kind = kind
        if builtins is None:
            builtins = BUILTINS.get(_KIND_OF_GROUP.get(group, ""), {})
        self._builtins = dict(builtins)
        self._use_entry_points = entry_points
        self._validate = validate
        self._lock = threading.RLock()
        self._entry_points: dict[str, PluginInfo] | None = None
        self._registered: dict[str, str | T] = {}
        self._loaded: dict[str, T] = {}

    def _discovered(self) -> dict[str, PluginInfo]:
        """Installed entry points, minus those that would replace a built-in (warned about)."""
        with self._lock:
            if self._entry_points is None:
                found = discover(self.group) if self._use_entry_points else {}
                for name, info in list(found.items()):
                    builtin = self._builtins.get(name)
                    if builtin is None:
                        continue
                    del found[name]  # sygnify's own metadata (maybe stale), or a clash the built-in wins
                    if info.distribution != "sygnify" and info.target != builtin[0]:
                        warnings.warn(
                            f"entry point {name!r} = {info.target!r} of {info.distribution or 'an unknown'} "
                            f"distribution in group {self.group!r} is ignored: {name!r} is sygnify's "
                            f"built-in {self.kind} ({builtin[0]}); register the plugin under another "
                            f"name, or call register({name!r}, ...) to replace the built-in on purpose",
                            stacklevel=4,
                        )
                self._entry_points = found
            return self._entry_points

    def refresh(self) -> None:
        """Forget discovered entry points and loaded plugins (after installing a plugin)."""
        with self._lock:
            self._entry_points = None
            self._loaded.clear()

    def register(self, name: str, plugin: str | T) -> None:
        """Register ``plugin`` (an object, or a lazy ``"module:attribute"`` path) as ``name``.

        A plugin registered in code takes precedence over a built-in or an entry point of
        the same name.
        """
        with self._lock:
            self._registered[name] = plugin
            self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        """Forget a plugin registered in code (a built-in of that name is found again)."""
        with self._lock:
            self._registered.pop(name, None)
            self._loaded.pop(name, None)

    def names(self) -> list[str]:
        """Names of all known plugins (built-in, registered in code or by entry point), sorted."""
        with self._lock:
            registered = set(self._registered)
        return sorted(set(self._builtins) | set(self._discovered()) | registered)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def extra(self, name: str) -> str | None:
        """The pip extra of sygnify that installs built-in ``name``'s dependencies, if any."""
        builtin = self._builtins.get(name)
        return builtin[1] if builtin is not None else None

    def describe(self) -> list[PluginInfo]:
        """Every known plugin with where it comes from, without importing any."""
        infos = dict(self._discovered())
        for name, (target, _) in self._builtins.items():
            infos[name] = PluginInfo(name, target, "sygnify")
        with self._lock:
            registered = list(self._registered.items())
        for name, plugin in registered:
            target = plugin if isinstance(plugin, str) else repr(plugin)
            infos[name] = PluginInfo(name, target, None)
        return [infos[name] for name in sorted(infos)]

    def load(self, name: str) -> T:
        """Import (once) and return the plugin called ``name``.

        Raises :class:`PluginNotFoundError` naming the available plugins, or the extra to
        install when the plugin exists but its dependencies are missing.
        """
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            plugin = self._find(name)
            obj = self._import(name, plugin) if isinstance(plugin, str) else plugin
            loaded = self._validate(name, obj) if self._validate else obj
            self._loaded[name] = loaded  # type: ignore[assignment]
            return loaded  # type: ignore[return-value]

    def _find(self, name: str) -> str | T:
        if name in self._registered:
            return self._registered[name]
        if name in self._builtins:
            return self._builtins[name][0]
        discovered = self._discovered()
        if name in discovered:
            return discovered[name].target
        available = self.names()
        close = difflib.get_close_matches(name, available, n=1)
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        raise PluginNotFoundError(
            f"unknown {self.kind} {name!r}{suggestion}; available: {', '.join(available) or 'none'}; "
            f"a third-party plugin registers itself under the entry-point group {self.group!r}",
            group=self.group,
            name=name,
            available=available,
        )

    def _import(self, name: str, target: str) -> object:
        try:
            return _import_target(target)
        except ImportError as exc:
            extra = self.extra(name)
            install = f"pip install 'sygnify[{extra}]'" if extra else f"install {exc.name!r}"
            raise PluginNotFoundError(
                f"{self.kind} {name!r} needs a package that is not installed ({exc.name or exc}); {install}",
                group=self.group,
                name=name,
                available=self.names(),
                extra=extra,
            ) from exc
        except AttributeError as exc:
            raise ConfigurationError(
                f"{self.kind} plugin {name!r} points at {target!r}, which does not exist: {exc}",
                resource=name,
            ) from exc
