"""What the stream extras' tests share: publish one record with the raw client, read it back."""

from __future__ import annotations

from sygnify.testing.sources import SCHEMA, ids, payload, read_until
from tests.streams.backends import Backend


def round_trip(backend: Backend) -> None:
    """Open ``backend``'s sygnify source, publish one record with the service's own client, read it."""
    backend.prepare()
    try:
        source = backend.open(schema=SCHEMA)  # subscribed when returned: MQTT keeps nothing for absent ones
        try:
            backend.produce([payload(7)])
            batches = read_until(source, 1, timeout=30)
            assert ids(batches) == [7]
            assert batches[0].batch.schema == SCHEMA
        finally:
            source.close()
    finally:
        backend.cleanup()
