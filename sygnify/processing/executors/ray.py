"""Ray as the second distributed engine: a local Ray instance by default, or a cluster.

Each task is one Ray task (``ray.remote``); the handler keeps at most ``max_in_flight``
pending. File parts travel as (path, row groups), so workers read their own data (the
files must be reachable from every node: an object store, or a shared file system).

>>> with RayExecutor(max_workers=1) as ex:  # starts a local Ray instance, then stops it
...     ex.submit(sum, [1, 2]).result()
3
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from sygnify.errors import ConfigurationError, ConnectionFailedError
from sygnify.processing.executors.config import FromConfig, RayExecutorConfig

try:
    import ray
except ImportError as exc:  # the registry turns this into "pip install 'sygnify[ray]'"
    raise ImportError("ray executor needs ray", name="ray") from exc

__all__ = ["RayExecutor", "RayFuture"]


#: Ports Ray listens on when an address names none: the GCS for "host", Ray Client for "ray://host".
_DEFAULT_PORTS = {"": 6379, "ray://": 10001}


def _endpoint(address: str) -> tuple[str, int] | None:
    """The (host, port) to probe for a cluster ``address``; None where Ray finds the
    cluster itself ("auto", "local", client protocols of other modules: ``"<module>://..."``).

    >>> _endpoint("ray://head:10001"), _endpoint("10.0.0.5"), _endpoint("[::1]:6380"), _endpoint("auto")
    (('head', 10001), ('10.0.0.5', 6379), ('::1', 6380), None)
    """
    if address in ("auto", "local"):
        return None
    scheme, separator, rest = address.partition("://")
    if not separator:
        scheme, rest = "", address
    elif scheme != "ray":
        return None
    rest = rest.rstrip("/")
    port: str | None
    if rest.startswith("["):  # an IPv6 literal, with or without a port
        host, bracket, tail = rest[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else (None if tail or not bracket else "")
    elif rest.count(":") > 1:  # a bare IPv6 address
        host, port = rest, ""
    else:
        host, _, port = rest.partition(":")
    if not host or port is None or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ConfigurationError(
            f"Ray address must be 'host[:port]', 'ray://host[:port]' or 'auto', got {address!r}",
            resource=address,
        )
    return host, int(port) if port else _DEFAULT_PORTS[scheme + separator]


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class RayFuture:
    """A Ray task's result, with the part of ``concurrent.futures.Future`` the handler uses.

    A task that raised re-raises the original exception (not Ray's wrapper), so typed
    sygnify errors stay typed.
    """

    def __init__(self, ref: Any) -> None:
        self.ref = ref

    def result(self, timeout: float | None = None) -> Any:
        try:
            return ray.get(self.ref, timeout=timeout)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from exc
            raise

    def done(self) -> bool:
        ready, _ = ray.wait([self.ref], num_returns=1, timeout=0)
        return bool(ready)

    def cancel(self) -> bool:
        ray.cancel(self.ref)
        return True


class RayExecutor(FromConfig):
    """Run tasks on Ray.

    ``address``: a cluster to join (``"ray://head:10001"`` through Ray Client, or
    ``"auto"`` on a cluster node; ``RAY_ADDRESS`` when not given, as for ``ray.init``);
    without one, and when Ray is not initialized yet in this process, a local Ray
    instance with ``max_workers`` CPUs is started and shut down with the executor. When
    Ray is already initialized (by the application), that instance is used and left
    running. ``init_options`` go to ``ray.init`` (``runtime_env``,
    ``object_store_memory``...). Each task asks for ``num_cpus`` CPUs.

    ``timeout``: seconds to wait for a TCP connection to the cluster's address before
    giving up with ``ConnectionFailedError`` (Ray itself would retry for minutes).
    """

    name = "ray"
    config_model = RayExecutorConfig
    remote = True

    def __init__(
        self,
        max_workers: int = 2,
        *,
        address: str | None = None,
        num_cpus: float = 1,
        init_options: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if max_workers < 1:
            raise ConfigurationError(f"max_workers must be >= 1, got {max_workers}")
        if num_cpus <= 0:
            raise ConfigurationError(f"num_cpus must be > 0, got {num_cpus}")
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0, got {timeout}")
        self.max_workers = max_workers
        self.timeout = timeout
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            # As ray.init() does: RAY_ADDRESS names the cluster when no address is given.
            self._start(address or os.environ.get("RAY_ADDRESS") or None, dict(init_options or {}))
        self._task = ray.remote(num_cpus=num_cpus)(_call)

    def _start(self, address: str | None, options: dict[str, Any]) -> None:
        options.setdefault("include_dashboard", False)
        options.setdefault("log_to_driver", False)
        if address is None:
            options.setdefault("num_cpus", self.max_workers)
            # Each worker's Polars gets its share of the cores (as for the process pool).
            env = dict(options.pop("runtime_env", None) or {})
            env_vars = dict(env.get("env_vars", {}))
            if "POLARS_MAX_THREADS" not in os.environ:
                cores = os.cpu_count() or 1
                env_vars.setdefault("POLARS_MAX_THREADS", str(max(1, cores // self.max_workers)))
            options["runtime_env"] = {**env, "env_vars": env_vars}
        else:
            self._probe(address)
        try:
            ray.init(address=address, **options)
        except ValueError as exc:  # Ray's own checks of the address and options
            raise ConfigurationError(f"ray.init refused the settings: {exc}", resource=address) from exc
        except (ConnectionError, TimeoutError) as exc:
            raise ConnectionFailedError(
                f"cannot reach the Ray cluster {address}: {exc}", resource=address
            ) from exc

    def _probe(self, address: str) -> None:
        endpoint = _endpoint(address)
        if endpoint is None:
            return
        try:
            socket.create_connection(endpoint, timeout=self.timeout).close()
        except OSError as exc:
            raise ConnectionFailedError(
                f"cannot reach the Ray cluster {address} within {self.timeout} s: {exc}", resource=address
            ) from exc

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> RayFuture:
        return RayFuture(self._task.remote(fn, *args))

    def wait_first(self, futures: list[Any]) -> tuple[list[Any], list[Any]]:
        by_ref = {future.ref: future for future in futures}
        ready, _ = ray.wait(list(by_ref), num_returns=1)
        done = [by_ref[ref] for ref in ready]
        return done, [future for future in futures if future not in done]

    def close(self) -> None:
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
