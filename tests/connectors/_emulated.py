"""Shared plumbing for connector tests that run against an emulator.

:func:`emulator_fixtures` makes the two fixtures such a test module needs: one that starts
the emulator once (or yields ``None`` when it cannot be installed or started) and a per-test
one that turns ``None`` into a skip (a failure in CI)::

    moto, server = emulator_fixtures(
        moto_server, "moto server could not be installed or started", session="moto"
    )

A test then asks for ``server``; ``optional_emulator`` and ``required`` are the two halves,
for fixtures that need them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Literal, TypeVar

import pytest

from tests.emulators import EmulatorUnavailable
from tests.services import require

__all__ = ["emulator_fixtures", "format_per_target", "optional_emulator", "required"]

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


def emulator_fixtures(
    start: Callable[[], AbstractContextManager[T]],
    reason: str,
    *,
    session: str,
    name: str = "server",
    scope: Literal["session", "package", "module"] = "session",
) -> tuple[Any, Any]:
    """Fixtures ``session`` (the emulator started once per ``scope``, or ``None``) and ``name``
    (that emulator for one test; skipped, or failed in CI, because ``reason`` when it is ``None``).

    Assign both to module names so pytest finds them: ``moto, server = emulator_fixtures(...)``.
    """

    @pytest.fixture(scope=scope, name=session)
    def started() -> Iterator[T | None]:
        yield from optional_emulator(start)

    @pytest.fixture(name=name)
    def running(request: pytest.FixtureRequest) -> T:
        server: T | None = request.getfixturevalue(session)
        return required(server, reason)

    return started, running


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
