"""Plugin registries over Python entry points.

sygnify's own connectors, executors, model backends and stream sources are registered
exactly like third-party ones: an entry point in a distribution's metadata, e.g. in a
plugin's ``pyproject.toml``::

    [project.entry-points."sygnify.connectors"]
    myservice = "my_package.connector:MyServiceConnector"

Entry points are discovered on first use and each plugin is imported only when it is
asked for, so optional dependencies cost nothing until used. ``register()`` adds a plugin
in code (handy in notebooks and tests)::

    >>> registry: Registry[type] = Registry("sygnify.examples", kind="example")
    >>> registry.register("dict", dict)
    >>> registry.load("dict") is dict
    True
    >>> "dict" in registry.names()
    True
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from sygnify.errors import ConfigurationError, PluginNotFoundError

__all__ = ["GROUPS", "PluginInfo", "Registry", "discover"]

T = TypeVar("T")

#: Entry-point groups sygnify reads, by the kind of plugin they hold.
GROUPS: Mapping[str, str] = {
    "connector": "sygnify.connectors",
    "executor": "sygnify.executors",
    "model": "sygnify.models",
    "source": "sygnify.sources",
}


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

    ``extras`` maps a plugin name to the pip extra of sygnify that installs its
    dependencies, so a miss can say exactly what to install. ``validate`` checks (and
    narrows) what an entry point loads, so a broken plugin fails with a clear error.
    """

    def __init__(
        self,
        group: str,
        *,
        kind: str,
        extras: Mapping[str, str] | None = None,
        validate: Callable[[str, object], T] | None = None,
    ) -> None:
        self.group = group
        self.kind = kind
        self._extras = dict(extras or {})
        self._validate = validate
        self._lock = threading.RLock()
        self._entry_points: dict[str, PluginInfo] | None = None
        self._registered: dict[str, str | T] = {}
        self._loaded: dict[str, T] = {}

    def _discovered(self) -> dict[str, PluginInfo]:
        with self._lock:
            if self._entry_points is None:
                self._entry_points = discover(self.group)
            return self._entry_points

    def refresh(self) -> None:
        """Forget discovered entry points and loaded plugins (after installing a plugin)."""
        with self._lock:
            self._entry_points = None
            self._loaded.clear()

    def register(self, name: str, plugin: str | T) -> None:
        """Register ``plugin`` (an object, or a lazy ``"module:attribute"`` path) as ``name``.

        A plugin registered in code takes precedence over an entry point of the same name.
        """
        with self._lock:
            self._registered[name] = plugin
            self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._registered.pop(name, None)
            self._loaded.pop(name, None)

    def names(self) -> list[str]:
        """Names of all known plugins (registered in code or by entry point), sorted."""
        return sorted(set(self._discovered()) | set(self._registered))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def describe(self) -> list[PluginInfo]:
        """Every known plugin with where it comes from, without importing any."""
        infos = dict(self._discovered())
        for name, plugin in self._registered.items():
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
        discovered = self._discovered()
        if name in discovered:
            return discovered[name].target
        available = self.names()
        extra = self._extras.get(name)
        close = difflib.get_close_matches(name, available, n=1)
        suggestion = f" (did you mean {close[0]!r}?)" if close else ""
        hint = (
            f"install it with: pip install 'sygnify[{extra}]'"
            if extra
            else f"a third-party plugin registers itself under the entry-point group {self.group!r}"
        )
        raise PluginNotFoundError(
            f"unknown {self.kind} {name!r}{suggestion}; available: {', '.join(available) or 'none'}; {hint}",
            group=self.group,
            name=name,
            available=available,
            extra=extra,
        )

    def _import(self, name: str, target: str) -> object:
        try:
            return _import_target(target)
        except ImportError as exc:
            extra = self._extras.get(name)
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
