"""Shared plumbing for connector tests that run against an emulator.

A session fixture starts the emulator once (or yields ``None`` when it cannot be installed
or started) and a per-test fixture turns ``None`` into a skip (a failure in CI)::

    @pytest.fixture(scope="session")
    def moto() -> Iterator[MotoServer | None]:
        yield from optional_emulator(moto_server)


    @pytest.fixture
    def server(moto: MotoServer | None) -> MotoServer:
        return required(moto, "moto server could not be installed or started")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import pytest

from tests.emulators import EmulatorUnavailable
from tests.services import require

__all__ = ["format_per_target", "optional_emulator", "required"]

T = TypeVar("T")


def optional_emulator(start: Callable[[], AbstractContextManager[T]]) -> Iterator[T | None]:
    """Yield the running emulator from ``start()``, or ``None`` if it is unavailable."""
    try:
        with start() as server:
            yield server
    except EmulatorUnavailable:
        yield None


def required(server: T | None, reason: str) -> T:
    """``server``, or skip the test (fail it in CI) because ``reason`` when it is ``None``."""
    require(server is not None, reason)
    assert server is not None
    return server


def format_per_target(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, connector_class: type[Any]
) -> None:
    """Make conformance targets named ``data_<format>/`` be written in that format.

    For connectors whose ``write()`` takes a ``format=``; a no-op in tests that do not use
    the ``dataset_target`` fixture.
    """
    if "dataset_target" not in request.fixturenames:
        return
    original = connector_class.write

    def write(self: Any, data: object, target: str, **kwargs: Any) -> Any:
        if target.startswith("data_") and "format" not in kwargs:
            kwargs["format"] = target.removeprefix("data_").rstrip("/")
        return original(self, data, target, **kwargs)

    monkeypatch.setattr(connector_class, "write", write)
