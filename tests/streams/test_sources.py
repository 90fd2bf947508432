"""Every stream source against its real server (tansu for Kafka), through the shipped kit.

The contract itself (round trip, dead letters, ack, redelivery, backpressure, close, a source
subscribed when returned) is :class:`sygnify.testing.sources.SourceConformance`; the
``backend`` fixture (tests/streams/conftest.py) is its harness for each service.
"""

from __future__ import annotations

import pytest

from sygnify.testing.sources import SCHEMA, SourceConformance, SourceHarness, ids, payload, read_until
from tests.streams.backends import Backend


class TestSourceConformance(SourceConformance):
    @pytest.fixture
    def harness(self, backend: Backend) -> Backend:
        assert isinstance(backend, SourceHarness)
        return backend


def test_repr_shows_no_secrets(backend: Backend) -> None:
    source = backend.open()
    try:
        assert "***" not in repr(source)
        assert type(source).__name__ in repr(source)
    finally:
        source.close()


@pytest.mark.parametrize("kind", ["redis"])
def test_pending_entries_of_a_dead_consumer_are_claimed(kind: str) -> None:
    from tests.services import require
    from tests.streams.backends import port_open

    require(port_open(6379), "redis server on 127.0.0.1:6379")
    backend = Backend(kind)
    try:
        dead = backend.open(consumer="dead", schema=SCHEMA)
        backend.produce([payload(i) for i in range(5)])
        assert sorted(ids(read_until(dead, 5, timeout=30, ack=False))) == list(range(5))
        dead.close()
        heir = backend.open(consumer="heir", schema=SCHEMA, claim_idle_ms=0)
        try:
            assert sorted(ids(read_until(heir, 5, timeout=30))) == list(range(5))
        finally:
            heir.close()
    finally:
        backend.cleanup()
