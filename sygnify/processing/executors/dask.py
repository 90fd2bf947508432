"""Dask as the distributed engine: a ``LocalCluster`` by default, or an existing scheduler.

Each chunk is one Dask task (``client.submit``); the handler keeps at most
``max_in_flight`` tasks pending, so a large input never floods the scheduler. File parts
travel as (path, row groups): workers read their own data.

>>> ex = DaskExecutor(max_workers=1, processes=False)
>>> ex.submit(sum, [1, 2]).result()
3
>>> ex.close()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sygnify.errors import ConfigurationError, ConnectionFailedError
from sygnify.processing.executors.config import DaskExecutorConfig, FromConfig

try:
    import distributed
except ImportError as exc:  # the registry turns this into "pip install 'sygnify[dask]'"
    raise ImportError("dask executor needs dask[distributed]", name="distributed") from exc

__all__ = ["DaskExecutor"]


class DaskExecutor(FromConfig):
    """Run chunks on a Dask cluster.

    ``address``: a scheduler (``"tcp://host:8786"``) to connect to; without it a
    ``LocalCluster`` with ``max_workers`` workers is started (``processes=False`` keeps
    them as threads in this process) and closed with the executor. ``client``: use an
    existing ``distributed.Client`` (not closed by the executor). ``timeout``: how long
    to try reaching the scheduler before a ``ConnectionFailedError``.
    """

    name = "dask"
    config_model = DaskExecutorConfig
    remote = True

    def __init__(
        self,
        max_workers: int = 2,
        *,
        address: str | None = None,
        client: Any = None,
        processes: bool = False,
        threads_per_worker: int = 1,
        memory_limit: str | int | None = "auto",
        timeout: str | float = "10s",
    ) -> None:
        if max_workers < 1:
            raise ConfigurationError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self._cluster: Any = None
        self._own_client = client is None
        try:
            if client is not None:
                self.client = client
            elif address is not None:
                self.client = distributed.Client(address, timeout=timeout)  # type: ignore[no-untyped-call]
            else:
                self._cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=max_workers,
                    threads_per_worker=threads_per_worker,
                    processes=processes,
                    memory_limit=memory_limit,
                    dashboard_address=None,
                )
                self.client = distributed.Client(self._cluster)  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise ConnectionFailedError(
                f"cannot reach the Dask scheduler {address or 'LocalCluster'}: {exc}", resource=address
            ) from exc

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def wait_first(self, futures: list[Any]) -> tuple[list[Any], list[Any]]:
        done, pending = distributed.wait(futures, return_when="FIRST_COMPLETED")  # type: ignore[no-untyped-call]
        return list(done), list(pending)

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
