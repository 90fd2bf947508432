"""Joining a Ray cluster by address: bad addresses are typed errors, unreachable ones fail fast.

Kept apart from ``test_ray.py``, whose module fixture keeps a Ray instance running: an
executor in a process where Ray is already initialized uses that instance and never dials.
"""

from __future__ import annotations

import socket
import time

import pytest
import ray

from sygnify.errors import ConfigurationError, ConnectionFailedError
from sygnify.processing.executors.ray import RayExecutor


def test_malformed_address_and_timeout_are_configuration_errors() -> None:
    for address in ("head:port", "head:70000", "[::1", "ray://:10001"):
        with pytest.raises(ConfigurationError, match="Ray address"):
            RayExecutor(address=address)
    with pytest.raises(ConfigurationError, match="timeout"):
        RayExecutor(address="head:6379", timeout=0)


@pytest.mark.parametrize("scheme", ["", "ray://", "env"])
def test_unreachable_cluster_fails_within_the_timeout(monkeypatch: pytest.MonkeyPatch, scheme: str) -> None:
    assert not ray.is_initialized(), "an earlier test left Ray running"
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    address: str | None = f"{scheme}127.0.0.1:{port}"
    if scheme == "env":  # RAY_ADDRESS names the cluster when no address is given
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
        address = None
    with pytest.raises(ConnectionFailedError, match=f"127.0.0.1:{port}"):
        RayExecutor(address=address, timeout=2)
    assert time.monotonic() - started < 10
    assert not ray.is_initialized()
