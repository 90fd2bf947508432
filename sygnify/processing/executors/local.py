"""Executors on this machine: a thread pool, and a process pool (spawned, cloudpickled tasks).

Threads suit Polars work well (Polars releases the GIL); processes isolate memory and
suit Python-heavy transforms. Tasks for processes are serialized with cloudpickle, so
lambdas and closures work as transforms.

>>> with ThreadExecutor(max_workers=2) as ex:
...     ex.submit(pow, 2, 10).result()
1024
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable
from typing import Any

import cloudpickle

from sygnify.errors import ConfigurationError
from sygnify.processing.executors.config import ExecutorConfig, FromConfig, ProcessExecutorConfig

__all__ = ["ProcessExecutor", "ThreadExecutor"]


class _PoolExecutor:
    name = "pool"
    remote = False

    def __init__(self, pool: cf.Executor, max_workers: int) -> None:
        self._pool = pool
        self.max_workers = max_workers

    def wait_first(self, futures: list[Any]) -> tuple[list[Any], list[Any]]:
        done, pending = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
        return list(done), list(pending)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def abandon(self) -> None:
        """Stop the pool without waiting for its workers (safe from a finalizer)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> _PoolExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check_workers(max_workers: int) -> int:
    if max_workers < 1:
        raise ConfigurationError(f"max_workers must be >= 1, got {max_workers}")
    return max_workers


class ThreadExecutor(_PoolExecutor, FromConfig):
    """Chunks on a pool of threads in this process."""

    name = "threads"
    config_model = ExecutorConfig

    def __init__(self, max_workers: int = 2) -> None:
        workers = _check_workers(max_workers)
        super().__init__(cf.ThreadPoolExecutor(workers, thread_name_prefix="sygnify-chunk"), workers)

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> cf.Future[Any]:
        return self._pool.submit(fn, *args)


def _run_pickled(payload: bytes) -> Any:
    fn, args = cloudpickle.loads(payload)
    return fn(*args)


class ProcessExecutor(_PoolExecutor, FromConfig):
    """Chunks on a pool of worker processes (``spawn``: forking a process that runs Polars
    threads can deadlock)."""

    name = "processes"
    config_model = ProcessExecutorConfig
    remote = True

    def __init__(self, max_workers: int = 2, *, start_method: str = "spawn") -> None:
        workers = _check_workers(max_workers)
        context = multiprocessing.get_context(start_method)
        threads = max(1, (os.cpu_count() or 1) // workers)
        # Each worker's Polars gets its share of the cores instead of one thread per core
        # in every worker (oversubscription); a value the user set is inherited and kept.
        # Polars sizes its thread pool when it is imported, so the variable must be set
        # before anything in the worker imports it: the initializer is ``os.putenv``,
        # which unpickles without importing sygnify (whose import pulls in Polars).
        share: dict[str, Any] = {}
        if "POLARS_MAX_THREADS" not in os.environ:
            share = {"initializer": os.putenv, "initargs": ("POLARS_MAX_THREADS", str(threads))}
        pool = cf.ProcessPoolExecutor(workers, mp_context=context, **share)
        super().__init__(pool, workers)

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> cf.Future[Any]:
        return self._pool.submit(_run_pickled, cloudpickle.dumps((fn, args)))
