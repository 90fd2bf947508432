"""A burst of 10,000 events on every server, into ``ml.stream`` with default options and a slow model.

The burst is produced while the stream runs; every event is predicted exactly once (none lost,
none twice) and nothing more arrives after it. MQTT's broker-side limits are the subject of
test_mqtt_burst.py; here the same burst goes through the whole stream on all four servers.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import numpy as np
import pyarrow as pa

from sygnify.ml.realtime import RealTimeML
from tests.streams.backends import Backend

BURST = 10_000
SCHEMA = pa.schema([("id", pa.int64()), ("x", pa.float64())])


def slow_model(X: np.ndarray) -> np.ndarray:
    time.sleep(0.002)  # a model call costs time: the burst must wait, not be dropped
    return X[:, 0] * 2


def test_a_burst_of_10000_events_is_predicted_exactly_once(backend: Backend) -> None:
    options = backend.source_options(ack_wait=30.0)  # NATS: the library's default
    source = backend.open(schema=SCHEMA, **options)  # MQTT: the session exists before the burst
    ml = RealTimeML()
    ml.register("m", backend="callable", fn=slow_model, features=["x"])
    payloads = [json.dumps({"id": i, "x": float(i)}).encode() for i in range(BURST)]
    producer = threading.Thread(target=backend.produce, args=(payloads,))
    seen: Counter[int] = Counter()
    wrong = 0
    with source:
        stream = ml.stream(source, model="m", max_latency=0.05)
        guard = threading.Timer(120, stream.stop)
        guard.start()
        producer.start()
        for table in stream:
            ids = table.column("id").to_pylist()
            seen.update(ids)
            predictions = table.column("prediction").to_pylist()
            wrong += sum(p != 2.0 * i for i, p in zip(ids, predictions, strict=True))
            if len(seen) >= BURST:
                stream.stop()
        guard.cancel()
        producer.join()
        extra = source.read(max_records=1000, timeout=1.0)  # nothing after the burst
    assert extra is None, f"{extra.batch.num_rows} events came again after the burst"
    assert sorted(seen) == list(range(BURST)), f"{BURST - len(seen)} events lost"
    assert max(seen.values()) == 1, "an event was predicted twice"
    assert wrong == 0
