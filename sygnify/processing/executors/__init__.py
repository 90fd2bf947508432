"""Executors run chunks for parallel mode: threads, processes, Dask, Ray (plugins).

An executor is a plugin in the entry-point group ``sygnify.executors``: a class with a
pydantic ``config_model`` and ``from_config(config, *, context)`` whose instances
``submit(fn, *args)`` and return futures with ``result()``, ``wait`` for the first of
several to finish, and ``close()``. ``"local"`` is an alias of ``"threads"``.

>>> ex = make_executor("local", max_workers=2)
>>> ex.submit(sum, [1, 2, 3]).result()
6
>>> ex.close()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from sygnify.errors import ConfigurationError
from sygnify.plugins import GROUPS, LegacyFactory, PluginContext, PluginFactory, Registry, warn_legacy_factory

__all__ = ["EXECUTORS", "Executor", "TaskFuture", "make_executor"]


@runtime_checkable
class TaskFuture(Protocol):
    """The part of a future the handler uses."""

    def result(self, timeout: float | None = None) -> Any: ...

    def done(self) -> bool: ...


@runtime_checkable
class Executor(Protocol):
    """What an executor plugin's instances do."""

    name: str
    max_workers: int
    #: True when tasks run in other processes (arguments and results are pickled).
    remote: bool

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> TaskFuture: ...

    def wait_first(self, futures: list[TaskFuture]) -> tuple[list[TaskFuture], list[TaskFuture]]:
        """Block until at least one future is done; return (done, pending)."""
        ...

    def close(self) -> None: ...


def _construct(plugin: Any, options: dict[str, Any], context: PluginContext) -> Executor:
    executor: Executor = plugin(**options)
    return executor


def _validate(name: str, plugin: object) -> PluginFactory[Executor]:
    if callable(getattr(plugin, "from_config", None)):
        return plugin  # type: ignore[return-value]
    if not callable(plugin):
        raise ConfigurationError(
            f"executor plugin {name!r} ({plugin!r}) is not a class with from_config(config, *, context)",
            resource=name,
        )
    warn_legacy_factory("executor", name, plugin, "constructor called with max_workers= and options")
    return LegacyFactory(plugin, _construct)


#: Executor plugins (from :data:`sygnify.plugins.BUILTINS`, and third-party ones) by name.
EXECUTORS: Registry[PluginFactory[Executor]] = Registry(
    GROUPS["executor"], kind="executor", validate=_validate
)


def make_executor(
    executor: str | Executor, *, max_workers: int, options: Mapping[str, Any] | None = None
) -> Executor:
    """An executor instance from a plugin name (or the instance itself).

    ``options`` are validated by the executor's ``config_model`` (a typo is refused, with
    the closest valid option).
    """
    if not isinstance(executor, str):
        if not isinstance(executor, Executor):
            raise ConfigurationError(
                f"executor must be a plugin name ({', '.join(EXECUTORS.names())}) or an Executor, "
                f"got {type(executor).__name__}"
            )
        return executor
    factory = EXECUTORS.load(executor)
    config = {"max_workers": max_workers, **dict(options or {})}
    return factory.from_config(config, context=PluginContext(executor))
