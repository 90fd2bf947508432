"""The config models of the built-in executors, and the ``from_config`` they share.

>>> from sygnify.plugins import PluginContext
>>> from sygnify.processing.executors.local import ThreadExecutor
>>> with ThreadExecutor.from_config({"max_workers": 1}, context=PluginContext("threads")) as ex:
...     ex.max_workers
1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict
from typing_extensions import Self

from sygnify.plugins import PluginContext, build_from_kwargs

__all__ = [
    "DaskExecutorConfig",
    "ExecutorConfig",
    "FromConfig",
    "ProcessExecutorConfig",
    "RayExecutorConfig",
]


class ExecutorConfig(BaseModel):
    """Options every executor takes: how many tasks run at once."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    max_workers: int = 2


class ProcessExecutorConfig(ExecutorConfig):
    """A process pool; ``start_method`` as in :mod:`multiprocessing` (``spawn`` is the safe one)."""

    start_method: Literal["spawn", "forkserver", "fork"] = "spawn"


class DaskExecutorConfig(ExecutorConfig):
    """A Dask scheduler ``address`` or ``client``, else a ``LocalCluster`` (see ``DaskExecutor``)."""

    address: str | None = None
    client: Any = None
    processes: bool = False
    threads_per_worker: int = 1
    memory_limit: str | int | None = "auto"
    timeout: str | float = "10s"


class RayExecutorConfig(ExecutorConfig):
    """A Ray cluster ``address``, else a local instance (see ``RayExecutor``)."""

    address: str | None = None
    num_cpus: float = 1
    init_options: dict[str, Any] | None = None
    timeout: float = 10.0


class FromConfig:
    """``from_config(config, *, context)`` for an executor class built with keyword arguments."""

    config_model: ClassVar[type[ExecutorConfig]] = ExecutorConfig

    @classmethod
    def from_config(cls, config: BaseModel | Mapping[str, Any], *, context: PluginContext) -> Self:
        """Start the executor from its config (a ``config_model`` instance or a mapping)."""
        return build_from_kwargs(cls, cls.config_model, config, what=f"executor {context.name!r}")
